#!/usr/bin/env python3
"""Scene shots: seconds of work per second of shot, per generator, one table.

Rows: the title card (the CPU draft: drawn once, then the camera move per frame) and Wan 2.2
TI2V text-to-video (a clip made once, looped with a cross-fade over the narration, each frame
covered to the video's size), both through the pack's engine as the Scene node runs them. Without
CUDA Wan is the tests' tiny random-weight pipeline (a smoke figure: the shape of the cost, not a
real model's); with CUDA, `--real` builds the released architecture with random weights in bf16
(about 21 GB on disk; nothing is downloaded) and reports torch's peak memory.

    .venv/bin/python scripts/bench/scenes.py                       # CPU: title card + tiny Wan
    .venv/bin/python scripts/bench/scenes.py --size 1280x720 --shot 8
    .venv/bin/python scripts/bench/scenes.py --real --workdir /big  # CUDA: Wan at real size
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "custom_nodes"))

import torch  # noqa: E402

import tiny_wan_i2v as tiny_wan  # noqa: E402
from podium import profiling  # noqa: E402
from podium.engines import idle_motion, scene  # noqa: E402
from podium.engines.scene_spec import read_scene  # noqa: E402
from podium.memory import get_manager  # noqa: E402

FPS = 25
PROMPT = "a lava lake glowing at night, slow push-in"


def size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def play(visual, seconds: float) -> float:
    """Seconds to render every frame of `seconds` of the shot at FPS (what the writer pulls)."""
    started = time.perf_counter()
    for i in range(int(seconds * FPS)):
        visual.render(i / FPS)
    return time.perf_counter() - started


def row(name: str, made_s: float, play_s: float, shot_s: float, report) -> tuple:
    peak = report.peak_bytes / 1024**3 if report else 0.0
    return (name, made_s, play_s, shot_s, (made_s + play_s) / shot_s, peak, report.device if report else "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=size, default=(320, 180), metavar="WxH", help="the video's size")
    parser.add_argument("--shot", type=float, default=4.0, help="seconds of narration the shot covers")
    parser.add_argument("--real", action="store_true", help="Wan at real size (CUDA only)")
    parser.add_argument("--clip", type=float, default=None, help="seconds of clip made (tiny 0.5, real 5)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the built model here")
    args = parser.parse_args()
    if args.real and not torch.cuda.is_available():
        parser.error("--real needs CUDA (a real-size Wan on the CPU takes hours)")
    width, height = args.size
    spec = read_scene(PROMPT)
    rows = []

    with profiling.stage("scene") as report:
        started = time.perf_counter()
        card = scene.make_shot(spec, args.shot, width, height, []).visual
        made = time.perf_counter() - started
        played = play(card, args.shot)
    rows.append(row("title card", made, played, args.shot, report))

    work = args.workdir or Path(tempfile.mkdtemp(prefix="podium-bench-scenes-"))
    folder = work / ("wan2.2-ti2v-5b-random" if args.real else "tiny-wan")
    if not (folder / ".built").exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"building {folder} (random weights) ...", flush=True)
        tiny_wan.build(folder, real_size=args.real, dtype=torch.bfloat16 if args.real else None)
        (folder / ".built").touch()
    clip = args.clip or (5.0 if args.real else 0.5)
    steps = args.steps or (idle_motion.STEPS if args.real else 2)
    long_side = idle_motion.LONG_SIDE if args.real else 64
    for label in ("Wan T2V (loading)", "Wan T2V"):
        with profiling.stage("scene") as report:
            started = time.perf_counter()
            frames = scene.video_shot(folder, spec, args.shot, width, height, 0, steps, long_side, longest=clip)
            shot = idle_motion.looped(frames, width, height)
            made = time.perf_counter() - started
            played = play(shot, args.shot)
        rows.append(row(f"{label} {frames.shape[2]}x{frames.shape[1]}x{len(frames)}", made, played, args.shot, report))
        idle_motion._embeds.clear()  # the second row pays for its text encoding too, not the load
    get_manager().evict()
    print(f"\nscene shots at {width}x{height}, {args.shot:g} s of shot at {FPS} fps "
          f"({'real-size' if args.real else 'tiny'} random-weight Wan, {steps} steps, {clip:g} s clip)")
    print(f"{'generator':<34} {'make s':>7} {'play s':>7} {'shot s':>7} {'s per s':>8} {'peak GB':>8} {'device':>7}")
    for r in rows:
        print(f"{r[0]:<34} {r[1]:>7.2f} {r[2]:>7.2f} {r[3]:>7.1f} {r[4]:>8.2f} {r[5]:>8.2f} {r[6]:>7}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
