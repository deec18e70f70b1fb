#!/usr/bin/env python3
"""What captions and the timeline cost a draft render (issue 24: at most 5 % more): CPU time and
wall time with burned sentence / words / karaoke captions and with `--timeline x.otio`, over
the same render without either.

Each case is a fresh `podium generate --preset draft` process with its own empty segment cache
(as a user runs it: word timings, the .ass layout, libass drawing every frame, the timeline and
its media all count); the cases run interleaved, --repeat rounds, and each column is the
median of its rounds. The ratio is taken on CPU seconds (user + system of the process and its
ffmpeg children) as well as wall time: on a shared machine wall time swings by tens of percent
from run to run, CPU time far less. Prints a table.

    .venv/bin/python scripts/bench/captions.py                  # 30 s, slides, 3 rounds
    .venv/bin/python scripts/bench/captions.py --seconds 60 --repeat 5 --mode portrait
    .venv/bin/python scripts/bench/captions.py --cases none karaoke karaoke+timeline
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from draft import portrait, run_case  # noqa: E402  (the draft bench's runner: one CLI process)

BURN = ["--subtitles", "burn", "--captions"]
CASES = {
    "none": ["--subtitles", "none"],
    "sentence": [*BURN, "sentence"],
    "words": [*BURN, "words"],
    "karaoke": [*BURN, "karaoke"],
    "timeline": ["--subtitles", "none", "--timeline", "{work}/edit.otio"],
    "karaoke+timeline": [*BURN, "karaoke", "--timeline", "{work}/edit.otio"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mode", choices=["slides", "portrait"], default="slides")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    cases = ["none", *[c for c in args.cases if c != "none"]]  # the baseline always runs
    print(f"draft preset, 1280x720 25 fps, {args.mode}, ~{args.seconds:g} s narration, "
          f"median of {args.repeat}, {os.cpu_count()} CPU cores")
    rows = {name: {"wall": [], "cpu": [], "audio": 0.0} for name in cases}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = portrait(work / "portrait.png")
        for round_ in range(args.repeat):  # interleaved: a slow spell hits every case alike
            for name in cases:
                case = work / f"{name}_{round_}"
                case.mkdir()
                extra = [a.format(work=case) for a in CASES[name]]
                before = cpu_seconds()
                row = run_case(args.seconds, args.mode, case, image, extra)
                rows[name]["cpu"].append(cpu_seconds() - before)
                rows[name]["wall"].append(row["wall"])
                rows[name]["audio"] = row["audio"]
    print(f"{'case':<17} {'narration':>9} {'wall':>8} {'CPU':>8} {'CPU/none':>9} {'wall/none':>9}")
    base_wall, base_cpu = (statistics.median(rows["none"][k]) for k in ("wall", "cpu"))
    for name, row in rows.items():
        wall, cpu = statistics.median(row["wall"]), statistics.median(row["cpu"])
        print(f"{name:<17} {row['audio']:>8.1f}s {wall:>7.1f}s {cpu:>7.1f}s {cpu / base_cpu:>9.3f} "
              f"{wall / base_wall:>9.3f}")


def cpu_seconds() -> float:
    """User + system CPU time of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
