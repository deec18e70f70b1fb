#!/usr/bin/env python3
"""The idle clip at Wan2.2-TI2V-5B's real size: seconds per clip and peak memory, one table.

The pipeline is built here with the released architecture (transformer 30 x 3072, umT5-XXL
text encoder, the Wan 2.2 VAE) and RANDOM weights, saved in bf16 (about 21 GB on disk; nothing
is downloaded: the cost of a pass does not depend on the weights' values), then run through
the pack's own loader and engine (`idle_motion.make_clip`: the text encoder alone first, then
the transformer + VAE), as the Idle clip node does. Peak memory is torch's peak allocated on
CUDA (RSS growth on the CPU). On CUDA it takes about 5 minutes on one big GPU (building the
weights is most of it); without CUDA it runs the tiny test pipeline as a smoke check.

    .venv/bin/python scripts/bench/idle_clip.py                 # CUDA: real size, 3 s clips
    .venv/bin/python scripts/bench/idle_clip.py --tiny          # CPU smoke (the tests' model)
    .venv/bin/python scripts/bench/idle_clip.py --sizes 1280x704 960x544 --seconds 3 --steps 30
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tiny_wan_i2v as tiny_wan  # noqa: E402
from podium import profiling  # noqa: E402
from podium.engines import idle_motion  # noqa: E402
from podium.memory import get_manager  # noqa: E402


def size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", default=not cuda,
                        help="the tests' tiny pipeline (default without CUDA)")
    parser.add_argument("--sizes", type=size, nargs="+", default=None, metavar="WxH")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the built model here")
    args = parser.parse_args()
    tiny = args.tiny
    sizes = args.sizes or ([(128, 64)] if tiny else [(1280, 704), (960, 544)])
    seconds = args.seconds or (0.5 if tiny else 3.0)
    steps = args.steps or (2 if tiny else idle_motion.STEPS)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="podium-bench-idle-"))
    folder = work / ("tiny-wan" if tiny else "wan2.2-ti2v-5b-random")
    started = time.perf_counter()
    if not (folder / ".built").exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"building {folder} (random weights, {'tiny' if tiny else 'real size, bf16'}) ...", flush=True)
        tiny_wan.build(folder, real_size=not tiny, dtype=None if tiny else torch.bfloat16)
        (folder / ".built").touch()
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    rng = np.random.default_rng(0)
    rows = []
    for width, height in sizes:
        still = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        frames = idle_motion.frame_count(seconds)
        with profiling.stage("idle_clip") as report:
            clip = idle_motion.make_clip(folder, still, seconds, steps, seed=0, long_side=max(width, height))
        loop = idle_motion.loop_frames(clip)
        jump, step = idle_motion.loop_jump(loop)
        rows.append((f"{clip.shape[2]}x{clip.shape[1]}", frames, steps, report.wall_s,
                     report.peak_bytes / 1024**3, report.device, len(loop), jump, step))
        idle_motion._embeds.clear()  # the next row pays for its text encoder too
        get_manager().evict()
    print(f"\nWan2.2-TI2V-5B idle clip ({'tiny random' if tiny else 'real size, random weights'}; "
          f"first row includes loading)")
    print(f"{'size':>10} {'frames':>6} {'steps':>5} {'s/clip':>8} {'peak GB':>8} {'device':>7} "
          f"{'loop':>5} {'jump':>6} {'step':>6}")
    for r in rows:
        print(f"{r[0]:>10} {r[1]:>6} {r[2]:>5} {r[3]:>8.1f} {r[4]:>8.2f} {r[5]:>7} {r[6]:>5} {r[7]:>6.1f} {r[8]:>6.1f}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
