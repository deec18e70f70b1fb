"""The idle clip: a tiny random-weight Wan 2.2 TI2V pipeline through the real diffusers loader
(WanImageToVideoPipeline, text encoder let go before the transformer), looped without a jump,
played frame-exact at 24/25/30 fps for any length, kept in place by the procedural motion
(with one line) when the model is missing or does not fit, saved losslessly and cached once
per video by the orchestrator."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))
from conftest import draw_portrait, ffprobe, streams  # noqa: E402
from tiny_wan_i2v import build as build_wan  # noqa: E402

from podium import paths  # noqa: E402
from podium.engines import idle_motion as engine  # noqa: E402
from podium.engines.output import frames_for  # noqa: E402
from podium.engines.presenter import PortraitMotion, load_image  # noqa: E402
from podium.memory import get_manager  # noqa: E402
from podium.nodes.idle_motion import OFF, PodiumIdleClip, PodiumSaveIdleClip  # noqa: E402
from podium.nodes.output import PodiumSaveVideo  # noqa: E402

W, H = 128, 96
FAST = dict(seconds=0.5, steps=2, seed=0, resolution=64)  # 13 frames of 64x64


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    folder = build_wan(tmp_path_factory.mktemp("wan") / "Wan2.2-TI2V-5B-Diffusers")
    yield folder
    get_manager().evict()


@pytest.fixture
def presenter(tmp_path):
    return PortraitMotion(load_image(draw_portrait(tmp_path / "face.png", W, H)), W, H)


@pytest.fixture
def out_dir(tmp_path):
    paths.set_output_directory(tmp_path / "output")
    yield tmp_path / "output"
    paths.set_output_directory(None)


def drifting_clip(n: int = 49) -> np.ndarray:
    """A clip that sways and drifts, so its last frame is far from its first."""
    frames = np.zeros((n, 48, 64, 3), np.uint8)
    for k in range(n):
        x = int(20 + 8 * np.sin(2 * np.pi * k / 16) + 0.4 * k)
        frames[k, 14:34, x:x + 12] = (220, 180, 150)
        frames[k, :, :, 2] += np.uint8(k)  # the light changes slowly too
    return frames


def test_clip_through_the_real_loader_loops_without_a_jump(wan, presenter):
    visual, frames = PodiumIdleClip().make("wan2.2-ti2v-5b", loop="crossfade", presenter=presenter,
                                           model_folder=str(wan), **FAST)
    assert isinstance(visual, engine.IdleLoop) and (visual.width, visual.height) == (W, H)
    gw, gh = engine.generation_size(W, H, 64)  # the video's aspect at the trained area (by area)
    assert tuple(frames.shape[1:]) == (gh, gw, 3) and len(frames) == len(visual.loop)
    jump, step = engine.loop_jump(visual.loop)
    assert jump <= step, (jump, step)  # the loop point is no bigger a change than any other
    # the text encoder was let go; the transformer + VAE stay cached for the next clip
    assert [k for k, *_ in get_manager().loaded() if k.startswith("wan-text:")] == []
    assert any(k.startswith("wan-i2v:") for k, *_ in get_manager().loaded())
    # the same clip again (same seed), played back and forth: no jump either
    raw = engine.make_clip(wan, presenter.still, FAST["seconds"], FAST["steps"], seed=0, long_side=64)
    assert np.array_equal(engine.loop_frames(raw, "crossfade"), visual.loop)
    jump, step = engine.loop_jump(engine.loop_frames(raw, "ping-pong"))
    assert jump <= step


def test_crossfade_cuts_at_the_matching_pose():
    clip = drifting_clip()
    raw_jump, raw_step = engine.loop_jump(clip)
    assert raw_jump > 3 * raw_step  # played as it is, the clip would jump
    for mode in ("crossfade", "ping-pong"):
        loop = engine.loop_frames(clip, mode)
        jump, step = engine.loop_jump(loop)
        assert jump <= 1.05 * step and step <= 1.5 * raw_step, (mode, jump, step, raw_step)
    assert len(engine.loop_frames(clip, "crossfade")) >= len(clip) // 2


@pytest.mark.parametrize("fps", [24, 25, 30])
def test_frame_counts_exact_for_any_length(out_dir, fps):
    loop = engine.loop_frames(drifting_clip(), "crossfade")
    visual = engine.IdleLoop(loop, engine.CLIP_FPS, W, H)
    for seconds in (0.7, 2.37):  # longer than the loop (about 1.2 s): it goes round again
        n = frames_for(seconds, fps)
        for i in (0, 1, n // 2, n - 1):
            want = engine.cover(loop[round(i / fps * engine.CLIP_FPS) % len(loop)], W, H)
            assert np.array_equal(visual.render(i / fps), want)
        rate = 16000
        audio = {"waveform": np.zeros((1, 1, int(seconds * rate)), np.float32), "sample_rate": rate}
        PodiumSaveVideo().save(visual, audio, fps, f"idle{fps}", "none")
        video = streams(ffprobe(sorted(out_dir.glob(f"idle{fps}_*.mp4"))[-1]), "video")[0]
        assert video["nb_frames"] == n and (video["width"], video["height"]) == (W, H)


def test_not_installed_keeps_the_procedural_motion(tmp_path, monkeypatch, presenter, caplog):
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "no-models"))
    visual, frames = PodiumIdleClip().make("wan2.2-ti2v-5b", loop="crossfade", presenter=presenter, **FAST)
    assert isinstance(visual, engine.ProceduralIdle)
    assert visual.note == ("idle clip not made: wan2.2-ti2v-5b is not installed (podium models pull "
                           "wan2.2-ti2v-5b); the procedural motion stays")
    assert visual.note in caplog.text and "\n" not in visual.note
    for t in (0.0, 0.4, 1.3):
        assert np.array_equal(visual.render(t), presenter.render(t))
    assert tuple(frames.shape) == (1, H, W, 3)
    off, _ = PodiumIdleClip().make(OFF, loop="crossfade", presenter=presenter, **FAST)
    assert isinstance(off, engine.ProceduralIdle) and "is off" in off.note


def test_too_big_for_the_gpu_keeps_the_procedural_motion(wan, tmp_path, monkeypatch, presenter):
    monkeypatch.setenv("PODIUM_VRAM_BUDGET_GB", "0.00001")  # 10 kB of room
    visual, _ = PodiumIdleClip().make("wan2.2-ti2v-5b", loop="crossfade", presenter=presenter,
                                      model_folder=str(wan), **FAST)
    assert isinstance(visual, engine.ProceduralIdle)
    assert "GB is free on cpu; the procedural motion stays" in visual.note
    # the registry's real-size model, installed, is not run on the CPU: its vram_gb says 14 GB
    monkeypatch.delenv("PODIUM_VRAM_BUDGET_GB")
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path))
    (tmp_path / "diffusers").mkdir()
    os.symlink(wan, tmp_path / "diffusers" / "Wan2.2-TI2V-5B-Diffusers")
    real, _ = PodiumIdleClip().make("wan2.2-ti2v-5b", loop="crossfade", presenter=presenter, **FAST)
    assert isinstance(real, engine.ProceduralIdle) and "no GPU here" in real.note


def test_saved_clip_plays_back_losslessly(out_dir, presenter):
    visual = engine.IdleLoop(engine.loop_frames(drifting_clip(25), "crossfade"), engine.CLIP_FPS, W, H)
    ui = PodiumSaveIdleClip().save(visual, "podium/idle")["ui"]["images"][0]
    saved = out_dir / ui["subfolder"] / ui["filename"]
    assert saved.suffix == ".mkv" and ui["frames"] == len(visual.loop) and ui["fps"] == engine.CLIP_FPS
    played, frames = PodiumIdleClip().make(OFF, loop="crossfade", presenter=presenter, clip_path=str(saved), **FAST)
    assert np.array_equal(played.loop, visual.loop) and played.fps == engine.CLIP_FPS
    assert len(frames) == len(visual.loop) and (played.width, played.height) == (W, H)
    note = PodiumSaveIdleClip().save(PodiumIdleClip().make(OFF, loop="crossfade", presenter=presenter,
                                                           **FAST)[0], "podium/idle")["ui"]["images"][0]
    assert (out_dir / note["subfolder"] / note["filename"]).read_text().startswith("idle clip not made")


def test_the_orchestrator_makes_the_clip_once_and_reuses_it(wan, tmp_path, out_dir):
    from orchestrator.servers.dispatch import InProcessInstance
    from orchestrator.render.presenter import make_idle_clip
    from orchestrator.render.segments import SegmentCache

    class Counting(InProcessInstance):
        runs = 0

        def produce(self, *args, **kwargs):
            Counting.runs += 1
            return super().produce(*args, **kwargs)

    portrait = draw_portrait(tmp_path / "me.png", W, H)
    cache = SegmentCache(tmp_path / "cache")
    extra = {("Idle clip", "model_folder"): str(wan), ("Idle clip", "steps"): 2,
             ("Idle clip", "seconds"): 0.5, ("Idle clip", "resolution"): 64}
    clip, note = make_idle_clip(portrait, (W, H), 0, Counting(), cache, lambda *_: None, extra)
    assert note is None and clip.parent.parent == cache.folder and clip.name == "idle.mkv"
    made = clip.read_bytes()
    again, _ = make_idle_clip(portrait, (W, H), 0, Counting(), cache, lambda *_: None, extra)
    assert again == clip and Counting.runs == 1 and clip.read_bytes() == made
    other = make_idle_clip(portrait, (W, H + 2), 0, Counting(), cache, lambda *_: None,
                           {("Idle clip", "model"): OFF})[0]
    assert other is None and Counting.runs == 2  # another size is another clip (here: none)
    frames, fps = engine.load_clip(clip)
    gw, gh = engine.generation_size(W, H, 64)
    assert fps == engine.CLIP_FPS and frames.shape[1:] == (gh, gw, 3)
    # no model: no clip, the note, and nothing cached
    missing, why = make_idle_clip(portrait, (W, H), 0, Counting(), cache, lambda *_: None,
                                  {("Idle clip", "model_folder"): str(tmp_path / "nothing")})
    assert missing is None and why.startswith("idle clip not made") and "pull" in why


def test_without_the_model_the_cli_says_so_and_segments_keep_the_procedural_motion(tmp_path, monkeypatch,
                                                                                     capsys, out_dir):
    from types import SimpleNamespace

    from orchestrator.servers.dispatch import InProcessInstance
    from orchestrator.render.presenter import IDLE_OFF, idle_motion
    from orchestrator.render.segments import SegmentCache
    from orchestrator.graphs.workflow import load_workflow

    assert IDLE_OFF == OFF
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "no-models"))
    graph, values = load_workflow("direct_balanced"), {}
    files = {("Presenter", "portrait_path"): draw_portrait(tmp_path / "me.png", W, H)}
    idle_motion(SimpleNamespace(size=(W, H), seed=0), graph, values, files, InProcessInstance(),
                SegmentCache(tmp_path / "cache"), lambda *_: None)
    assert values == {("Idle clip", "model"): OFF} and ("Idle clip", "clip_path") not in files
    assert capsys.readouterr().err.strip() == ("idle clip not made: wan2.2-ti2v-5b is not installed "
                                               "(podium models pull wan2.2-ti2v-5b); the procedural motion stays")


def test_the_clip_is_sized_by_the_trained_area_in_the_videos_aspect():
    """1280x704 (the template's and the training's size) for 16:9; a square or portrait video
    gets the same number of pixels, not a 1280 long side (1.8x the area for a square)."""
    assert engine.generation_size(1920, 1080) == (1280, 704)
    assert engine.generation_size(1080, 1920) == (704, 1280)
    w, h = engine.generation_size(1024, 1024)
    assert (w, h) == (960, 960) and w % 32 == 0
    for size in ((1920, 1080), (1024, 1024), (1080, 1350), (640, 480)):
        w, h = engine.generation_size(*size)
        assert w % 32 == 0 and h % 32 == 0
        assert abs(w * h / (1280 * 704) - 1) < 0.1
