"""Podium inside a real ComfyUI: the pack loads, direct.json runs over HTTP + websocket, its MP4
is right, it equals the in-process runner's, bad graphs answer 400, the example is served.

Needs a ComfyUI source tree whose requirements are installed in this environment:
    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_comfyui_integration.py
ComfyUI runs with --cpu on a free port; its output/temp/user/input folders are temporary.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests


REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from conftest import COMFYUI_DIR, comfyui_server, live_comfyui, run_prompt  # noqa: E402

pytestmark = live_comfyui
from orchestrator.render import embedded, local  # noqa: E402
from orchestrator.graphs.prompt_errors import describe_prompt_error  # noqa: E402
from orchestrator.graphs.workflow import load_workflow  # noqa: E402

FFPROBE = "/usr/bin/ffprobe"
PACK_NODES = {"PodiumDirectScript", "PodiumPiperTTS", "PodiumPresenter", "PodiumSubtitles", "PodiumSaveVideo"}
EXAMPLE = REPO / "workflows/direct.json"
WIDGET_TYPES = {"STRING", "INT", "FLOAT", "BOOLEAN", "COMBO"}


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A running ComfyUI with the repo as base directory: {"url", "port", "log"}."""
    root = tmp_path_factory.mktemp("comfyui")
    args = [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(REPO),
            "--database-url", "sqlite:///:memory:"]
    for name in ("output", "temp", "user", "input"):
        (root / name).mkdir()
        args += [f"--{name}-directory", str(root / name)]
    from orchestrator.graphs.workflow import link_templates
    link_templates()  # as `podium comfy up` does: workflows/ as the pack's templates
    with comfyui_server(args, cwd=root, log_path=root / "comfyui.log") as server:
        yield {**server, "input": root / "input"}


def download(comfy: dict, item: dict, dest: Path) -> Path:
    answer = requests.get(comfy["url"] + "/view",
                          params={k: item[k] for k in ("filename", "subfolder", "type")})
    assert answer.status_code == 200, answer.text
    dest.write_bytes(answer.content)
    return dest


def probe(path: Path) -> dict:
    """{codec_type: stream} from ffprobe."""
    out = subprocess.run([FFPROBE, "-v", "error", "-show_entries",
                          "stream=codec_type,codec_name,duration,nb_frames,width,height",
                          "-of", "json", str(path)], check=True, capture_output=True, text=True)
    return {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}


def decoded_md5(path: Path, stream: str) -> str:
    """MD5 of the decoded audio ("a") or video ("v") stream."""
    import imageio_ffmpeg
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path),
                          "-map", f"0:{stream}", "-f", "md5", "-"], check=True, capture_output=True)
    return out.stdout.decode().strip()


def small_graph(prefix: str, voice_path: str = "") -> dict:
    graph = load_workflow("direct")
    graph["1"]["inputs"]["text"] = "Hello from ComfyUI. This is a short test, in two sentences."
    graph["2"]["inputs"]["voice_path"] = voice_path
    graph["3"]["inputs"].update(width=320, height=180)
    graph["5"]["inputs"].update(fps=12, filename_prefix=prefix)
    return graph


@pytest.fixture(scope="module")
def still_voice(comfy) -> Path:
    """The default Piper voice with its sampling noise off (noise_scale = noise_w = 0), in the
    server's input folder (where a graph may name it): Piper otherwise draws random noise on
    every call, so no two runs give the same audio."""
    embedded.node_classes()  # puts the pack on sys.path
    from podium.models import resolve
    source = Path(resolve("piper-en_US-joe-medium"))
    target = comfy["input"] / "joe-still.onnx"
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    config = json.loads(Path(f"{source}.json").read_text())
    config.setdefault("inference", {}).update(noise_scale=0.0, noise_w=0.0)
    Path(f"{target}.json").write_text(json.dumps(config))
    return target


def test_pack_loads_with_its_input_specs(comfy):
    log = comfy["log"].read_text()
    assert "IMPORT FAILED" not in log and "Cannot import" not in log, log
    info = requests.get(comfy["url"] + "/object_info").json()
    for name, cls in embedded.node_classes().items():
        node = info[name]
        spec = json.loads(json.dumps(cls.INPUT_TYPES()))
        for key in ("sampler_name", "scheduler"):  # ComfyUI's own lists there, a short stand-in here
            if key in spec.get("required", {}):
                served = node["input"]["required"][key][0]
                assert set(spec["required"][key][0]) <= set(served), (name, key, served)
                spec["required"][key][0] = served
        assert node["input"] == spec
        assert node["input_order"] == {k: list(v) for k, v in spec.items()}
        assert node["output"] == list(cls.RETURN_TYPES)
        assert node["output_node"] == bool(getattr(cls, "OUTPUT_NODE", False))
        assert node["category"] == cls.CATEGORY
    assert PACK_NODES <= set(embedded.node_classes())


def test_direct_graph_runs_to_a_right_mp4(comfy, tmp_path):
    graph = small_graph("podium/itest")
    entry, messages = run_prompt(comfy, graph)
    types = [m["type"] for m in messages]
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert types.index("execution_start") < types.index("execution_success")
    ran = {m["data"]["node"] for m in messages if m["type"] == "executing"} - {None}
    assert ran == set(graph)
    executed = [m["data"] for m in messages if m["type"] == "executed"]
    assert [e["node"] for e in executed] == ["5"]
    ui = entry["outputs"]["5"]
    assert executed[0]["output"] == ui
    video = ui["images"][0]
    assert video["format"] == "video/mp4" and video["type"] == "output" and ui["animated"] == [True]
    streams = probe(download(comfy, video, tmp_path / "video.mp4"))
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "aac"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 180)
    frame = 1 / video["fps"]
    assert int(streams["video"]["nb_frames"]) == video["frames"]
    assert abs(float(streams["video"]["duration"]) - video["duration"]) < frame
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) <= frame
    srt = download(comfy, ui["subtitles"][0], tmp_path / "video.srt").read_text()
    assert "Hello from ComfyUI." in srt and "-->" in srt


def test_same_result_as_in_process_runner(comfy, still_voice, tmp_path):
    graph = small_graph("podium/same", voice_path=still_voice.name)  # the server's input folder
    entry, _ = run_prompt(comfy, graph)
    served = entry["outputs"]["5"]
    graph["2"]["inputs"]["voice_path"] = str(still_voice)  # in-process: the user's own path
    mine = embedded.run_graph(copy.deepcopy(graph), tmp_path / "local")["5"]
    assert mine == served  # same frames, fps, duration, file names
    here = tmp_path / "local" / mine["images"][0]["subfolder"]
    there = download(comfy, served["images"][0], tmp_path / "comfy.mp4")
    ours = here / mine["images"][0]["filename"]
    assert download(comfy, served["subtitles"][0], tmp_path / "comfy.srt").read_text() == \
        (here / mine["subtitles"][0]["filename"]).read_text()
    assert decoded_md5(there, "a") == decoded_md5(ours, "a")
    assert decoded_md5(there, "v") == decoded_md5(ours, "v")


@pytest.mark.parametrize("node_id, title, input_name, value, error_type", [
    ("2", "Voice", "voice_path", "voice.txt", "custom_validation_failed"),
    ("1", "Script", "text", None, "required_input_missing"),  # None: the input is left out
])
def test_invalid_graph_answers_400_like_the_local_runner(comfy, node_id, title, input_name, value,
                                                         error_type):
    graph = small_graph("podium/bad")
    graph[node_id]["inputs"][input_name] = value
    if value is None:
        del graph[node_id]["inputs"][input_name]
    answer = requests.post(comfy["url"] + "/prompt", json={"prompt": graph, "client_id": "t"})
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    errors = body["node_errors"][node_id]
    assert errors["class_type"] == graph[node_id]["class_type"]
    found = [(e["type"], e["extra_info"]["input_name"]) for e in errors["errors"]]
    # ComfyUI names every input VALIDATE_INPUTS takes in its own error (Voice: voice_path and
    # speaker_voices, in that order), the same message in each; the failing one comes first
    assert found[0] == (error_type, input_name) and {t for t, _ in found} == {error_type}
    message = describe_prompt_error(body, graph)
    assert f'"{title}"' in message and f'input "{input_name}"' in message
    with pytest.raises(local.PromptError) as raised:
        local.validate(graph, embedded.node_classes())
    assert raised.value.body == body


UPLOADS = ("image_upload", "audio_upload", "video_upload")


def widget_inputs(info: dict) -> list[tuple[str | None, list]]:
    """(name, spec) of a node's widgets in the editor's order: required, the upload button when
    a required combo has one (name None: its value is never sent), then optional."""
    found = []
    for category in ("required", "optional"):
        specs = info["input"].get(category, {})
        found += [(name, specs[name]) for name in info["input_order"].get(category, [])
                  if isinstance(specs[name][0], list) or specs[name][0] in WIDGET_TYPES]
        if category == "required" and any(len(spec) > 1 and isinstance(spec[1], dict) and spec[1].get(flag)
                                          for spec in specs.values() for flag in UPLOADS):
            found.append((None, ["UPLOAD"]))
    return found


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """What the editor's "Export (API)" makes of a UI-format workflow (Podium's nodes only:
    no seed control widgets, no virtual or bypassed nodes)."""
    links = {link[0]: link for link in workflow["links"]}
    graph = {}
    for node in workflow["nodes"]:
        if node["type"] == "Note":  # the editor's own: never sent
            continue
        info = object_info[node["type"]]
        widgets = widget_inputs(info)
        assert len(widgets) == len(node["widgets_values"]), (
            f"node #{node['id']} ({node['type']}) has {len(node['widgets_values'])} widget values but "
            f"/object_info declares {len(widgets)} widgets: update the example workflow")
        inputs = {name: value for (name, _), value in zip(widgets, node["widgets_values"]) if name is not None}
        for slot in node["inputs"]:
            if slot.get("link") is not None:
                _, from_node, from_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(from_node), from_slot]
        graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                  "_meta": {"title": node.get("title") or info["display_name"]}}
    return graph


def with_defaults(graph: dict, object_info: dict) -> dict:
    """The graph with each widget input it leaves out at its declared default (as the editor
    shows the node)."""
    graph = copy.deepcopy(graph)
    for node in graph.values():
        for name, spec in widget_inputs(object_info[node["class_type"]]):
            if name is not None:
                node["inputs"].setdefault(name, spec[1].get("default") if len(spec) > 1 else None)
    return graph


def test_example_workflow_is_served_and_equals_direct_json(comfy):
    assert "direct" in requests.get(comfy["url"] + "/workflow_templates").json()["podium"]
    served = requests.get(comfy["url"] + "/api/workflow_templates/podium/direct.json")
    assert served.status_code == 200 and served.json() == json.loads(EXAMPLE.read_text())
    workflow = served.json()
    assert workflow["version"] == 0.4 and workflow["last_node_id"] == max(n["id"] for n in workflow["nodes"])
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for link_id, from_node, from_slot, to_node, to_slot, kind in workflow["links"]:
        output, target = nodes[from_node]["outputs"][from_slot], nodes[to_node]["inputs"][to_slot]
        assert link_id in output["links"] and target["link"] == link_id
        assert output["type"] == target["type"] == kind
    info = requests.get(comfy["url"] + "/object_info").json()
    direct = load_workflow("direct")
    assert ui_to_api(workflow, info) == with_defaults(direct, info)


def test_cli_through_comfyui_keeps_segment_audio_lossless(comfy, tmp_path):
    """`podium generate --server`: ComfyUI's SaveVideo writes each segment as H.264 + PCM .mov
    (`intermediate`, set by the orchestrator; /view serves it), the cache keeps it so, and the
    user's file is the one H.264/AAC MP4, its streams equally long to the frame."""
    from conftest import run_cli

    out = tmp_path / "talk.mp4"
    rc, _, err = run_cli("generate", "--server", comfy["url"], "--text",
                         "Hello from ComfyUI.\n\nA second segment, in its own graph.",
                         "--out", out, "--size", "160x90", "--fps", "10", "--quiet", tmpdir=tmp_path / "tmp")
    assert rc == 0, err
    streams = probe(out)
    assert (streams["video"]["codec_name"], streams["audio"]["codec_name"]) == ("h264", "aac")
    assert abs(float(streams["video"]["duration"]) - float(streams["audio"]["duration"])) <= 0.1
    cache = tmp_path / "tmp-cache"
    clips = sorted(p for p in cache.glob("*/clip.*") if p.suffix not in (".srt", ".ass"))  # captions beside
    assert len(clips) == 2 and all(c.suffix == ".mov" for c in clips), clips
    assert all(probe(c)["audio"]["codec_name"] == "pcm_s16le" for c in clips)
