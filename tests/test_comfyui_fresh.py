"""Podium in a real ComfyUI (--cpu): a portrait changed under the same name gives a new video
when the graph is queued again (IS_CHANGED), the same graph with nothing changed is served from
ComfyUI's cache without rendering anything; the Ollama model list route answers with the allowed
host's models only; the pack's editor extension is served.

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_comfyui_fresh.py
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from orchestrator.graphs.workflow import load_workflow

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from conftest import COMFYUI_DIR, comfyui_server, draw_portrait, live_comfyui, run_prompt  # noqa: E402
from fake_ollama import FakeOllama  # noqa: E402

pytestmark = live_comfyui


@pytest.fixture(scope="module")
def ollama():
    with FakeOllama(models=("llama3.2:latest", "qwen3:4b")) as allowed, FakeOllama(models=("other:1b",)) as other:
        yield allowed, other


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, ollama):
    root = tmp_path_factory.mktemp("comfyui")
    args = [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(REPO),
            "--database-url", "sqlite:///:memory:"]
    for name in ("output", "temp", "user", "input"):
        (root / name).mkdir()
        args += [f"--{name}-directory", str(root / name)]
    env = {**os.environ, "PODIUM_OLLAMA_HOSTS": ollama[0].url}
    with comfyui_server(args, cwd=root, log_path=root / "comfyui.log", env=env) as server:
        yield {**server, "input": root / "input", "output": root / "output"}


def graph_with_portrait(name: str) -> dict:
    graph = load_workflow("direct")  # stored in the editor's format, converted
    graph["1"]["inputs"]["text"] = "Hello from ComfyUI."
    graph["3"]["inputs"].update(width=160, height=120, portrait_path=name)
    graph["5"]["inputs"].update(fps=8, filename_prefix="podium/fresh")
    return graph


def first_frame(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(out, np.uint8).reshape(120, 160, 3).astype(np.int16)


def ran(messages: list[dict]) -> set[str]:
    return {m["data"]["node"] for m in messages if m["type"] == "executing"} - {None}


def cached(messages: list[dict]) -> set[str]:
    return {n for m in messages if m["type"] == "execution_cached" for n in m["data"]["nodes"]}


def test_a_changed_portrait_re_renders_and_an_unchanged_graph_is_served_from_the_cache(comfy):
    portrait = draw_portrait(comfy["input"] / "face.png", 160, 120)
    graph = graph_with_portrait("face.png")

    entry, messages = run_prompt(comfy, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert ran(messages) == set(graph)
    video = entry["outputs"]["5"]["images"][0]
    first = comfy["output"] / video["subfolder"] / video["filename"]
    made = sorted(p.name for p in (comfy["output"] / "podium").iterdir())

    entry, messages = run_prompt(comfy, graph)  # nothing changed: every node from the cache
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert ran(messages) == set() and cached(messages) == set(graph)
    assert sorted(p.name for p in (comfy["output"] / "podium").iterdir()) == made  # nothing rendered

    st = portrait.stat()  # the same name (and time): another picture
    Image.fromarray(255 - np.asarray(Image.open(portrait).convert("RGB"))).save(portrait)
    os.utime(portrait, ns=(st.st_atime_ns, st.st_mtime_ns))
    entry, messages = run_prompt(comfy, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert {"3", "5"} <= ran(messages) and "2" in cached(messages)  # the voice is not made again
    video = entry["outputs"]["5"]["images"][0]
    second = comfy["output"] / video["subfolder"] / video["filename"]
    assert second != first
    assert np.abs(first_frame(second) - first_frame(first)).mean() > 40  # the inverted portrait


def test_the_model_list_route_asks_only_the_allowed_host(comfy, ollama):
    allowed, other = ollama
    answer = requests.get(comfy["url"] + "/podium/ollama/models", timeout=30)
    assert answer.status_code == 200 and answer.json()["models"] == ["llama3.2:latest", "qwen3:4b"]
    refused = requests.get(comfy["url"] + "/podium/ollama/models", params={"host": other.url}, timeout=30)
    assert refused.status_code == 403 and not other.requests


def test_the_editor_extension_is_served(comfy):
    scripts = requests.get(comfy["url"] + "/extensions", timeout=30).json()
    ours = [s for s in scripts if s.endswith("/podium.js")]
    assert len(ours) == 1, scripts
    body = requests.get(comfy["url"] + ours[0], timeout=30).text
    assert "podium_audio_upload" in body and "/podium/ollama/models" in body


CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--no-first-run", "--no-default-browser-check"]
NODES_JS = """() => {
  const make = (type) => { const n = LiteGraph.createNode(type); app.graph.add(n); return n; };
  window.podiumTest = {music: make("PodiumMusicFile"), presenter: make("PodiumPresenter"),
                       settings: make("PodiumOllamaSettings")};
  const describe = (n) => ({widgets: n.widgets.map(w => [w.name, w.type, w.label || ""]),
                            saved: n.serialize().widgets_values});
  return Object.fromEntries(Object.entries(window.podiumTest).map(([k, n]) => [k, describe(n)]));
}"""


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_editor_offers_upload_buttons_and_the_allowed_ollama_models(comfy, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    track = tmp_path / "bed.wav"
    subprocess.run([__import__("imageio_ffmpeg").get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", str(track)], check=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(comfy["url"], wait_until="networkidle", timeout=120_000)
            page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=120_000)
            nodes = page.evaluate(NODES_JS)
            music, presenter, settings = nodes["music"], nodes["presenter"], nodes["settings"]
            # the audio combo and its button (last, not saved: widgets_values keep their order)
            assert [w[:2] for w in music["widgets"]][:2] == [["file", "combo"], ["max_seconds", "number"]]
            assert music["widgets"][-1][1] == "button" and "upload" in music["widgets"][-1][2]
            assert len(music["saved"]) == 2
            # core's image upload on the portrait combo
            assert ["portrait_path", "combo"] in [w[:2] for w in presenter["widgets"]]
            assert any(w[0] == "upload" for w in presenter["widgets"])
            assert settings["widgets"][-1][2] == "choose an installed model"
            assert settings["saved"][:2] == ["http://127.0.0.1:11434", "llama3.2"]
            # what the editor saves is what the orchestrator's UI-format converter expects
            from orchestrator.render.embedded import object_info
            from orchestrator.graphs.ui_format import widget_names

            info = object_info()
            for name, node in (("PodiumMusicFile", music), ("PodiumPresenter", presenter),
                               ("PodiumOllamaSettings", settings)):
                assert len(node["saved"]) == sum(1 + extra for *_, extra in widget_names(info[name])), name

            # uploading through the button puts the file in the input folder and picks it
            page.locator("input[type=file][accept='audio/*,video/*']").first.set_input_files(str(track))
            page.wait_for_function("window.podiumTest.music.widgets[0].value === 'bed.wav'", timeout=30_000)
            assert (comfy["input"] / "bed.wav").read_bytes() == track.read_bytes()

            # the model list: the allowed host's models; choosing one fills the text input
            page.evaluate("""() => { const n = window.podiumTest.settings;
              n.widgets.find(w => w.name === 'host').value = '';
              const b = n.widgets[n.widgets.length - 1];
              b.callback(b, app.canvas, n, [0, 0], new MouseEvent('click', {clientX: 300, clientY: 300})); }""")
            page.get_by_text("qwen3:4b", exact=True).click(timeout=30_000)
            model = page.evaluate("() => window.podiumTest.settings.widgets.find(w => w.name === 'model').value")
            assert model == "qwen3:4b"
            page.screenshot(path=str(tmp_path / "editor.png"))
        finally:
            browser.close()
