#!/usr/bin/env python3
"""What captions cost a draft render: CPU time (and wall time) with burned sentence / words /
karaoke captions over the same render without subtitles (target: at most 1.05).

Each case is a fresh `podium generate --preset draft` process with its own empty segment cache
(as a user runs it: word timings, the .ass layout and libass drawing every frame all count);
each is run --repeat times, interleaved, and the least kept. The ratio is taken on CPU seconds
(user + system of the process and its ffmpeg children): on a shared machine wall time swings
by tens of percent from run to run, CPU time far less. Prints a table.

    .venv/bin/python scripts/bench/captions.py                  # 30 s, slides, 3 repeats
    .venv/bin/python scripts/bench/captions.py --seconds 60 --repeat 2 --mode portrait
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from draft import portrait, run_case  # noqa: E402  (the draft bench's runner: one CLI process)

CASES = {
    "none": ["--subtitles", "none"],
    "sentence": ["--subtitles", "burn", "--captions", "sentence"],
    "words": ["--subtitles", "burn", "--captions", "words"],
    "karaoke": ["--subtitles", "burn", "--captions", "karaoke"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=["slides", "portrait"], default="slides")
    args = parser.parse_args()
    print(f"draft preset, 1280x720 25 fps, {args.mode}, ~{args.seconds:g} s narration, "
          f"fastest of {args.repeat}, {os.cpu_count()} CPU cores")
    print(f"{'captions':<9} {'narration':>9} {'wall':>8} {'CPU':>8} {'CPU/none':>9} {'wall/none':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = portrait(work / "portrait.png")
        walls = {}
        for round_ in range(args.repeat):  # interleaved: a slow spell hits every case alike
            for name, extra in CASES.items():
                case = work / f"{name}_{round_}"
                case.mkdir()
                before = cpu_seconds()
                row = run_case(args.seconds, args.mode, case, image, extra)
                cpu = cpu_seconds() - before
                wall, least, _ = walls.get(name, (float("inf"), float("inf"), 0))
                walls[name] = min(wall, row["wall"]), min(least, cpu), row["audio"]
        base_wall, base_cpu, _ = walls["none"]
        for name, (wall, cpu, audio) in walls.items():
            print(f"{name:<9} {audio:>8.1f}s {wall:>7.1f}s {cpu:>7.1f}s {cpu / base_cpu:>9.3f} "
                  f"{wall / base_wall:>9.3f}")


def cpu_seconds() -> float:
    """User + system CPU time of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
