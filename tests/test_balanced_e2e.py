"""The balanced preset's graph end to end on the CPU, every neural stage through its real
loader on tiny random-weight models built here: the presenter drawn once (SD1.5-style
pipeline), the idle clip made once (Wan 2.2 TI2V-style pipeline) and played under the lip
sync by MuseTalk 1.5 (tiny UNet / VAE / Whisper), a cloned voice (F5-TTS), Real-ESRGAN
(spandrel); the
segments rendered, cached and stitched into one MP4 whose streams agree within one frame."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from conftest import ffprobe, streams  # noqa: E402
from test_presenter_image import build_sd15  # noqa: E402
from test_tts_f5 import build_tiny_f5  # noqa: E402
from test_upscale import build as build_esrgan  # noqa: E402
from tiny_musetalk import build as build_musetalk  # noqa: E402
from tiny_wan_i2v import build as build_wan  # noqa: E402

from orchestrator.servers.dispatch import InProcessInstance, render_all  # noqa: E402
from orchestrator.render.presenter import make_idle_clip  # noqa: E402
from orchestrator.render.segments import SegmentCache, plan  # noqa: E402
from orchestrator.render.stitch import stitch  # noqa: E402
from orchestrator.graphs.workflow import bind, find_node, load_workflow  # noqa: E402
from podium.engines.script import parse_script  # noqa: E402

FPS = 25
TEXT = "Hello from the balanced preset. Every stage runs here.\n\nA second segment follows. It ends now."


@pytest.fixture(autouse=True)
def fresh_models():
    """Leave the process-wide model manager as we found it: later tests count what it holds."""
    from podium.memory import get_manager

    yield
    get_manager().evict()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        return real(self, address)
    real = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


def produce(graph: dict, files: dict, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    return InProcessInstance().produce(graph, files, workdir, lambda *_: None)


def test_balanced_graph_end_to_end(tmp_path, monkeypatch):
    f5 = build_tiny_f5(tmp_path / "f5")
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(build_musetalk(tmp_path / "models")))  # its registry ids
    esrgan = tmp_path / "RealESRGAN_x2plus.pth"
    build_esrgan(esrgan, scale=2)
    sd15 = build_sd15(tmp_path / "sd15")

    # the presenter, drawn once for every segment
    drawing = bind(load_workflow("presenter_image"), {
        ("Presenter image", "model_folder"): str(sd15), ("Presenter image", "width"): 64,
        ("Presenter image", "height"): 64, ("Presenter image", "steps"): 2})
    images = produce(drawing, {}, tmp_path / "drawn")["images"]
    portrait = images[0][0]
    assert portrait.suffix == ".png" and portrait.stat().st_size > 0

    # the idle clip, made once for every segment from the same picture at the video's size
    cache = SegmentCache(tmp_path / "cache")
    wan = build_wan(tmp_path / "wan")
    idle, note = make_idle_clip(portrait, (128, 96), 0, InProcessInstance(), cache, lambda *_: None, {
        ("Idle clip", "model_folder"): str(wan), ("Idle clip", "steps"): 2,
        ("Idle clip", "seconds"): 0.5, ("Idle clip", "resolution"): 64})
    assert note is None and idle.suffix == ".mkv"

    graph = load_workflow("direct_balanced")
    by_title = {n["_meta"]["title"]: n for n in graph.values()}
    assert by_title["Lip sync"]["class_type"] == "PodiumMuseTalk"
    assert by_title["Lip sync"]["inputs"]["visual"] == [find_node(graph, "Idle clip"), 0]
    values = {
        ("Voice", "ckpt_path"): str(f5 / "model_tiny.safetensors"),
        ("Voice", "vocab_path"): str(f5 / "vocab.txt"), ("Voice", "vocoder_dir"): str(f5 / "vocos"),
        ("Voice", "model_config"): str(f5 / "tiny.yaml"), ("Voice", "nfe_step"): 2,
        ("Voice", "ref_text"): "Hello there, this is my voice.",
        ("Presenter", "width"): 128, ("Presenter", "height"): 96,
        ("Lip sync", "fps"): FPS,
        ("Lip sync", "face_box"): "32,16,96,80",  # random SD weights draw no face to detect
        ("Upscale", "model_path"): str(esrgan), ("Upscale", "tile"): 64,
        ("Upscale", "width"): 128, ("Upscale", "height"): 96,
        ("Save video", "fps"): FPS,
    }
    files = {("Voice", "reference_audio"): f5 / "ref.wav", ("Presenter", "portrait_path"): portrait,
             ("Idle clip", "clip_path"): idle}
    jobs = plan(graph, parse_script(TEXT), values, files)
    assert len(jobs) == 2
    clips = render_all(jobs, [InProcessInstance()], cache, lambda *_: None)
    out = stitch(clips, tmp_path / "balanced.mp4")

    info = ffprobe(out)
    video, audio = streams(info, "video"), streams(info, "audio")
    assert [s["codec_name"] for s in video] == ["h264"] and [s["codec_name"] for s in audio] == ["aac"]
    total = sum(c.frames for c in clips) / FPS
    assert abs(float(video[0]["duration"]) - total) <= 1 / FPS
    assert abs(float(audio[0]["duration"]) - float(video[0]["duration"])) <= 1 / FPS
    assert (int(video[0]["width"]), int(video[0]["height"])) == (128, 96)
    srt = out.with_suffix(".srt").read_text()
    assert "Hello from the balanced preset." in srt and "It ends now." in srt
    # a rerun finds both segments in the cache
    assert all(cache.get(job.key) is not None for job in jobs)
