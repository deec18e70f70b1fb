"""Podium's graphs (workflows/*.json) as ComfyUI's templates, in a real ComfyUI: the
checkpoint-presenter template renders with a tiny random-weight SD1.5 checkpoint (core nodes draw
the picture, Podium speaks, lip-syncs and writes the MP4), and in both ways the pack is installed
the template browser in Debian's chromium (driven by Playwright) lists every graph with its
thumbnail, loads each with its nodes and links and no error dialog (the InfiniteTalk one shows
the editor's own missing-node dialog on 0.3.64, and its note says which ComfyUI has the node),
and the draft template queued from the page writes an MP4 with audio. The two layouts:
- `--base-directory`: a temporary base whose custom_nodes/podium links to this repository's
  pack (as `podium comfy up` runs it, with the repository as base): custom_nodes/podium/
  example_workflows links to workflows/;
- a clone: a copy of COMFYUI_DIR run the ordinary way, the repository's files in
  custom_nodes/comfyui-podium (what ComfyUI-Manager and `comfy node install` do): ComfyUI finds
  the repository's workflows/ itself.

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_comfyui_templates.py
Screenshots of the browser go to $PODIUM_SCREENSHOTS (else the test's temporary folder).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import time
import sys
from pathlib import Path

import numpy as np
import pytest
import requests

from conftest import COMFYUI_DIR, FFMPEG, comfyui_server, ffprobe, live_comfyui, run_prompt, streams

pytestmark = live_comfyui

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = REPO / "workflows"
CHROMIUM = "/usr/bin/chromium"
CHECKPOINT = "tiny_sd15_random.safetensors"
# The picture is drawn at 64x64; the presenter puts it, 1.5 times larger, in a 128x96 frame at
# x 16..112 (motion 0: a still frame). The lip sync works on this fixed box within it.
PICTURE, FRAME, FACE_BOX = 64, (128, 96), (32, 16, 96, 80)
FPS = 12


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """ComfyUI with a base directory of its own: the pack linked in, the tiny SD1.5 checkpoint in
    models/checkpoints and a Wav2Lip .onnx in input/. {"url", "port", "base", "log"}."""
    base = tmp_path_factory.mktemp("comfyui-base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "podium").symlink_to(REPO / "custom_nodes" / "podium")
    from orchestrator.graphs.workflow import link_templates
    assert link_templates() is not None  # what `podium comfy up` does: workflows/ as the pack's templates
    for name in ("input", "output", "temp", "user"):
        (base / name).mkdir()
    subprocess.run([sys.executable, str(REPO / "tests" / "tiny_sd15.py"), COMFYUI_DIR,
                    str(base / "models" / "checkpoints" / CHECKPOINT)], check=True,
                   capture_output=True, timeout=600)
    from test_lipsync import calibrated_wav2lip
    from podium.engines.wav2lip_net import export_onnx
    export_onnx(calibrated_wav2lip(), base / "input" / "wav2lip_random.onnx")

    args = [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(base),
            "--database-url", "sqlite:///:memory:"]
    with comfyui_server(args, cwd=base, log_path=base / "comfyui.log") as server:
        yield {**server, "base": base, "module": "podium"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A copy of COMFYUI_DIR with this repository's files in custom_nodes/comfyui-podium, run
    without --base-directory: {"url", "port", "base", "module"}."""
    from test_comfyui_install import CLONE, OWN, repo_files

    root = tmp_path_factory.mktemp("comfyui-clone") / "ComfyUI"
    shutil.copytree(COMFYUI_DIR, root, ignore=lambda d, names: [n for n in names if Path(d) == Path(COMFYUI_DIR)
                                                                and n in OWN or n == "__pycache__"])
    for name in repo_files():
        (root / "custom_nodes" / CLONE / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / "custom_nodes" / CLONE / name)
    for name in ("input", "output"):
        (root / name).mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PODIUM_MODELS_DIR", "PYTHONPATH")}
    with comfyui_server(["main.py", "--database-url", "sqlite:///:memory:"], cwd=root,
                        log_path=root.parent / "comfyui.log", env=env) as server:
        yield {**server, "base": root, "module": CLONE}


@pytest.fixture(scope="module", params=["base-directory", "clone"])
def layout(request):
    return request.getfixturevalue("comfy" if request.param == "base-directory" else "clone")


def decoded_frames(path: Path, width: int, height: int) -> np.ndarray:
    done = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo",
                           "-pix_fmt", "rgb24", "-"], capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8).reshape(-1, height, width, 3)


def of_class(graph: dict, class_type: str) -> str:
    (node_id,) = [k for k, v in graph.items() if v["class_type"] == class_type]
    return node_id


def test_checkpoint_presenter_template_renders_with_an_sd15_checkpoint(comfy, tmp_path):
    from orchestrator.graphs.ui_format import ui_to_api
    from podium.engines.presenter import PortraitMotion

    info = requests.get(comfy["url"] + "/object_info").json()
    assert CHECKPOINT in info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    workflow = json.loads((TEMPLATES / "checkpoint_presenter.json").read_text())
    graph = ui_to_api(workflow, info)  # what the editor queues for this template
    core = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode"}
    assert core <= {n["class_type"] for n in graph.values()}
    presenter, lip, save = (of_class(graph, c) for c in ("PodiumPresenter", "PodiumLipSync", "PodiumSaveVideo"))
    assert graph[presenter]["inputs"]["portrait"] == [of_class(graph, "VAEDecode"), 0]
    assert graph[lip]["inputs"]["visual"] == [presenter, 0]
    # The same graph, made small for a CPU: the tiny checkpoint, a 64 px picture in two steps,
    # a still 128x96 presenter, the random Wav2Lip on a fixed box, 12 fps.
    graph[of_class(graph, "CheckpointLoaderSimple")]["inputs"]["ckpt_name"] = CHECKPOINT
    graph[of_class(graph, "EmptyLatentImage")]["inputs"].update(width=PICTURE, height=PICTURE)
    graph[of_class(graph, "KSampler")]["inputs"].update(steps=2)
    graph[of_class(graph, "PodiumDirectScript")]["inputs"]["text"] = "Hello from a drawn presenter."
    graph[presenter]["inputs"].update(width=FRAME[0], height=FRAME[1], motion=0.0)
    graph[lip]["inputs"].update(fps=FPS, model_path="wav2lip_random.onnx", batch_size=8,
                                face_box=",".join(map(str, FACE_BOX)))
    graph[save]["inputs"].update(fps=FPS, filename_prefix="podium/template")
    graph["picture"] = {"class_type": "SaveImage", "inputs": {
        "images": [of_class(graph, "VAEDecode"), 0], "filename_prefix": "podium/picture"}}

    entry, messages = run_prompt(comfy, copy.deepcopy(graph), timeout=600)
    assert entry["status"]["status_str"] == "success", entry["status"]
    ran = {m["data"]["node"] for m in messages if m["type"] == "executing"} - {None}
    assert ran == set(graph)

    video = entry["outputs"][save]["images"][0]
    out = comfy["base"] / "output"
    mp4 = out / video["subfolder"] / video["filename"]
    info = ffprobe(mp4)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], a["codec_name"]) == ("h264", "aac")
    assert (v["width"], v["height"]) == FRAME
    assert v["nb_frames"] == video["frames"]
    assert abs(v["duration"] - a["duration"]) <= 1 / FPS
    assert abs(v["duration"] - video["frames"] / FPS) < 1 / FPS

    # The drawn picture is what the video shows: away from the mouth, each frame is the
    # presenter made of the checkpoint's picture (within H.264's loss).
    from PIL import Image
    saved = entry["outputs"]["picture"]["images"][0]
    picture = np.asarray(Image.open(out / saved["subfolder"] / saved["filename"]).convert("RGB"))
    assert picture.shape == (PICTURE, PICTURE, 3) and picture.std() > 5  # drawn, not blank
    expected = PortraitMotion(picture, *FRAME, strength=0.0).render(0.0).astype(np.float32)
    frames = decoded_frames(mp4, *FRAME).astype(np.float32)
    x1, y1, x2, y2 = FACE_BOX
    away = np.ones(frames.shape[1:3], bool)
    away[y1:y2, x1:x2] = False
    shown = frames[:, away].mean(axis=0)
    assert np.corrcoef(shown.ravel(), expected[away].ravel())[0, 1] > 0.95
    assert np.abs(shown - expected[away]).mean() < 12  # H.264 on a noisy random picture
    # Wav2Lip really ran on the drawn face: the mouth half of the box changes frame by frame,
    # the rest of the picture does not.
    mouth = frames[:, (y1 + y2) // 2:y2, x1:x2]
    mouth_change = np.abs(np.diff(mouth, axis=0)).mean()
    still_change = np.abs(np.diff(frames[:, away], axis=0)).mean()
    assert mouth_change > 4 * still_change + 1, (mouth_change, still_change)
    assert np.abs(mouth - expected[(y1 + y2) // 2:y2, x1:x2]).mean() > 3


LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
NEWER = {"WanInfiniteTalkToVideo"}  # in ComfyUI's core after 0.3.64
DIALOGS = "() => [...document.querySelectorAll('[role=dialog]')].map(d => d.innerText.slice(0, 400))"


def names_and_thumbnails(server: dict) -> list[str]:
    """What the server lists for the pack: exactly the stored graphs, each with its JPEG."""
    names = sorted(p.stem for p in TEMPLATES.glob("*.json"))
    listed = requests.get(server["url"] + "/workflow_templates").json()
    assert sorted(listed[server["module"]]) == names, listed
    assert not [m for m, found in listed.items() if m != server["module"] and set(found) & set(names)]
    for name in names:  # the frontend asks for <name>.jpg beside the .json
        answer = requests.get(f"{server['url']}/api/workflow_templates/{server['module']}/{name}.jpg")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg", name
    return names


def open_template(page, module: str, name: str) -> int:
    """Open the template browser on the pack, find the card (the browser's own search: it shows
    a dozen cards at a time), wait for its thumbnail, load it; returns the thumbnail's width
    as shown (a 404 would leave it 0)."""
    page.evaluate("async () => { await window.app.extensionManager.command.execute('Comfy.BrowseTemplates') }")
    page.get_by_text(module, exact=True).first.click(timeout=60_000)  # under "Custom Nodes"
    page.get_by_placeholder("Search templates").fill(name)
    image = page.locator(f"[role=dialog] img[alt='{name}']").first
    image.wait_for(timeout=60_000)
    image.scroll_into_view_if_needed()
    page.wait_for_function(f"() => [...document.querySelectorAll(\"[role=dialog] img[alt='{name}']\")]"
                           ".some(i => i.complete && i.naturalWidth > 0)", timeout=60_000)
    width = image.evaluate("i => i.naturalWidth")
    image.click(timeout=60_000)
    nodes = len(json.loads((TEMPLATES / f"{name}.json").read_text())["nodes"])
    page.wait_for_function(f"() => window.app.graph.nodes.length === {nodes} && "
                           "!document.querySelector('[role=dialog] img')", timeout=60_000)
    return width


def queue_from_page(page, server: dict) -> dict:
    """Queue what the page shows (the editor's own Queue), wait for its /history entry."""
    before = set(requests.get(server["url"] + "/history").json())
    page.evaluate("async () => { await window.app.queuePrompt(0, 1) }")
    deadline = time.monotonic() + 600
    while True:
        new = {k: v for k, v in requests.get(server["url"] + "/history").json().items() if k not in before}
        done = [v for v in new.values() if v.get("status", {}).get("completed") is not None
                or v.get("status", {}).get("status_str") == "error"]
        if done:
            return done[0]
        assert time.monotonic() < deadline, "the queued draft never finished"
        page.wait_for_timeout(500)


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)")
def test_template_browser_lists_loads_and_runs_podiums_templates(layout, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    shots = Path(os.environ.get("PODIUM_SCREENSHOTS") or tmp_path) / layout["module"]
    shots.mkdir(parents=True, exist_ok=True)
    module, names = layout["module"], names_and_thumbnails(layout)
    from PIL import Image
    widths = {name: Image.open(TEMPLATES / f"{name}.jpg").width for name in names}
    served = set(requests.get(layout["url"] + "/object_info").json())

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1800})  # every card in view (thumbnails load lazily)
            page.goto(layout["url"], wait_until="networkidle", timeout=120_000)
            page.wait_for_function("window.app && window.app.graph && window.app.extensionManager",
                                   timeout=120_000)
            # Errors from here on: frontend 1.27.10 throws one of its own at start-up (a setting's
            # onChange, "reading 'id'"), with or without any custom node.
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            for name in names:
                stored = json.loads((TEMPLATES / f"{name}.json").read_text())
                missing = {n["type"] for n in stored["nodes"] if n["type"] != "Note"} - served
                assert open_template(page, module, name) == widths[name], name  # its thumbnail shows
                page.wait_for_timeout(1500)  # a missing-node dialog would be open by now
                page.screenshot(path=str(shots / f"loaded_{name}.png"))
                dialogs = page.evaluate(DIALOGS)
                if missing:  # InfiniteTalk on 0.3.64: the editor's own dialog names the node
                    assert missing == NEWER, (name, missing)
                    assert len(dialogs) == 1 and "WanInfiniteTalkToVideo" in dialogs[0], dialogs
                    note = page.evaluate("() => window.app.graph.nodes.filter(n => n.type === 'Note')"
                                         ".map(n => n.widgets[0].value).join(' ')")
                    assert "WanInfiniteTalkToVideo" in note and "0.38" in note, note
                    page.keyboard.press("Escape")
                    page.wait_for_function("() => !document.querySelector('[role=dialog]')", timeout=30_000)
                    continue
                assert dialogs == [], (name, dialogs)
                types = page.evaluate("() => window.app.graph.nodes.map(n => n.type)")
                assert sorted(types) == sorted(n["type"] for n in stored["nodes"]), name
                # links by input name: the editor gives every widget a socket of its own, so a
                # widget fed by a link may sit at another slot index than in the file
                links = page.evaluate("() => { const g = window.app.graph.serialize();"
                                      " const by = Object.fromEntries(g.nodes.map(n => [n.id, n]));"
                                      " return g.links.map(l => [l[1], l[2], l[3], by[l[3]].inputs[l[4]].name]) }")
                by_id = {n["id"]: n for n in stored["nodes"]}
                assert sorted(links) == sorted([a, a_slot, b, by_id[b]["inputs"][b_slot]["name"]]
                                               for _, a, a_slot, b, b_slot, _ in stored["links"]), name
                scale = page.evaluate("() => window.app.canvas.ds.scale")
                assert scale >= 0.8, (name, scale)  # opens where node text shows

            # The draft template, queued from the page as a user would (made small for a CPU)
            open_template(page, module, "direct")
            page.evaluate("""() => {
                const set = (title, values) => {
                    const node = window.app.graph.nodes.find(n => n.title === title);
                    for (const [name, value] of Object.entries(values))
                        node.widgets.find(w => w.name === name).value = value;
                };
                set('Script', {text: 'Queued from the template.'});
                set('Presenter', {width: 160, height: 96});
                set('Save video', {fps: 12, filename_prefix: 'podium/from_template'});
            }""")
            entry = queue_from_page(page, layout)
            assert entry["status"]["status_str"] == "success", entry["status"]
            assert not errors, errors
        finally:
            browser.close()
    (video,) = [v for out in entry["outputs"].values() for v in out.get("images", []) if v["filename"].endswith(".mp4")]
    answer = requests.get(layout["url"] + "/view", params={k: video[k] for k in ("filename", "subfolder", "type")})
    mp4 = tmp_path / "draft.mp4"
    mp4.write_bytes(answer.content)
    info = ffprobe(mp4)
    (v,), (a,) = streams(info, "video"), streams(info, "audio")
    assert (v["codec_name"], a["codec_name"], v["width"], v["height"]) == ("h264", "aac", 160, 96)
    assert a["duration"] > 0.5 and abs(v["duration"] - a["duration"]) <= 1 / 12 + 1e-6
