"""Podium in a real ComfyUI (--cpu): a portrait changed under the same name gives a new video
when the graph is queued again (IS_CHANGED), the same graph with nothing changed is served from
ComfyUI's cache without rendering anything; the Ollama model list route answers with the allowed
host's models only; the pack's editor extension is served.

    COMFYUI_DIR=/path/to/ComfyUI python -m pytest tests/test_comfyui_fresh.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

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
    graph = json.loads((REPO / "workflows/direct.json").read_text())
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
