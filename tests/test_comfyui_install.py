"""Podium installed as every ComfyUI pack is: the repository cloned into ComfyUI/custom_nodes/
under a folder name of its own, ComfyUI started the ordinary way (no --base-directory).

Every Podium node is in /object_info (loaded once, from the clone), Podium's model folders are
registered with ComfyUI (extra_model_paths.yaml counted), workflows/direct.json renders to an MP4
with both streams, and path inputs are confined to ComfyUI's input folder with one message.

Needs a ComfyUI source tree whose requirements are installed in this environment:
    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_comfyui_install.py
The tree is copied to a temporary folder (its own custom_nodes, models, input, output); the
original is never written.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from conftest import COMFYUI_DIR, comfyui_server, draw_portrait, ffprobe, live_comfyui, run_prompt, streams  # noqa: E402

pytestmark = live_comfyui
from orchestrator.render import embedded  # noqa: E402
from orchestrator.graphs.workflow import load_workflow  # noqa: E402

CLONE = "comfyui-podium"  # not "podium": the pack must load whatever the folder is called
OWN = {"custom_nodes", "models", "input", "output", "temp", "user", "__pycache__", ".git"}


def repo_files() -> list[str]:
    """What a clone holds: tracked files and new ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A copy of COMFYUI_DIR with the repository in custom_nodes/comfyui-podium, running with
    --cpu on a free port: {"url", "port", "root", "log"}."""
    root = tmp_path_factory.mktemp("comfyui-install") / "ComfyUI"
    shutil.copytree(COMFYUI_DIR, root, ignore=lambda d, names: [n for n in names if Path(d) == Path(COMFYUI_DIR)
                                                                and n in OWN or n == "__pycache__"])
    clone = root / "custom_nodes" / CLONE
    for name in repo_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    for name in ("input", "output", "models/upscale_models", "models/tts/piper"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "models/upscale_models/RealESRGAN_x2plus.pth").write_bytes(b"not really weights")
    extra = root.parent / "elsewhere"
    (extra / "tts/piper").mkdir(parents=True)
    (extra / "tts/piper/en_GB-alba-medium.onnx").write_bytes(b"x")
    (root / "extra_model_paths.yaml").write_text(f"elsewhere:\n  base_path: {extra}\n  tts: tts\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_MODELS_DIR", "PYTHONPATH")}
    with comfyui_server(["main.py", "--database-url", "sqlite:///:memory:"], cwd=root,
                        log_path=root.parent / "comfyui.log", env=env) as server:
        yield {**server, "root": root}


def direct_graph(prefix: str) -> dict:
    graph = load_workflow("direct")
    graph["1"]["inputs"]["text"] = "Installed like every pack. Two short sentences."
    graph["3"]["inputs"].update(width=320, height=180)
    graph["5"]["inputs"].update(fps=12, filename_prefix=prefix)
    return graph


def test_every_podium_node_loads_once_from_the_clone(comfy):
    log = comfy["log"].read_text()
    assert "IMPORT FAILED" not in log and "Cannot import" not in log, log[-3000:]
    info = requests.get(comfy["url"] + "/object_info").json()
    ours = set(embedded.node_classes())
    assert ours <= set(info), sorted(ours - set(info))
    import podium

    for name in ours:
        assert info[name]["python_module"] == f"custom_nodes.{CLONE}", info[name]
        assert info[name]["display_name"] == podium.NODE_DISPLAY_NAME_MAPPINGS[name]
    assert log.count(f"custom_nodes/{CLONE}") == 1, "the pack is listed once among the imports"


def test_podium_model_folders_are_registered_with_extra_paths(comfy):
    tts = requests.get(comfy["url"] + "/models/tts")
    assert tts.status_code == 200, tts.text
    assert "piper/en_GB-alba-medium.onnx" in tts.json()  # from extra_model_paths.yaml
    assert requests.get(comfy["url"] + "/models/lipsync").status_code == 200
    assert "RealESRGAN_x2plus.pth" in requests.get(comfy["url"] + "/models/upscale_models").json()


def test_direct_json_renders_an_mp4_with_both_streams(comfy, tmp_path):
    entry, _ = run_prompt(comfy, direct_graph("podium/installed"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    video = entry["outputs"]["5"]["images"][0]
    answer = requests.get(comfy["url"] + "/view", params={k: video[k] for k in ("filename", "subfolder", "type")})
    assert answer.status_code == 200
    mp4 = tmp_path / "installed.mp4"
    mp4.write_bytes(answer.content)
    assert mp4.read_bytes() == (comfy["root"] / "output" / video["subfolder"] / video["filename"]).read_bytes()
    info = ffprobe(mp4)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
    assert (v["width"], v["height"]) == (320, 180)
    assert abs(v["duration"] - a["duration"]) <= 1 / 12 + 1e-6
    assert v["nb_frames"] == video["frames"]


def _refusal(comfy: dict, portrait: str) -> tuple[int, str]:
    graph = direct_graph("podium/refused")
    graph["3"]["inputs"]["portrait_path"] = portrait
    answer = requests.post(comfy["url"] + "/prompt", json={"prompt": graph, "client_id": "t"})
    if answer.status_code != 400:
        return answer.status_code, answer.text
    (error,) = answer.json()["node_errors"]["3"]["errors"]
    return 400, error["details"].replace(repr(portrait), "<path>")


def test_path_inputs_are_confined_to_the_input_folder_with_one_message(comfy, tmp_path):
    outside = draw_portrait(tmp_path / "outside.png")  # a real, readable image
    draw_portrait(comfy["root"] / "input" / "face.png")
    (comfy["root"] / "secret.png").write_bytes(outside.read_bytes())
    answers = {p: _refusal(comfy, p) for p in (str(outside), "../secret.png", "../../x.png",
                                              "missing.png", "~/outside.png")}
    assert {status for status, _ in answers.values()} == {400}, answers
    messages = {message for _, message in answers.values()}
    assert len(messages) == 1, answers  # missing, outside and absolute read the same
    assert "input folder" in messages.pop()
    graph = direct_graph("podium/confined")
    graph["3"]["inputs"]["portrait_path"] = "face.png"
    assert run_prompt(comfy, graph)[0]["status"]["status_str"] == "success"
