#!/usr/bin/env python3
"""What captions and the timeline cost a draft render (issue 24: at most 5 % more): CPU time and
wall time with burned sentence / words / karaoke captions and with `--timeline x.otio`, over
the same render without either.

Each case is a fresh `podium generate --preset draft` process with its own empty segment cache
(as a user runs it: word timings, the .ass layout, libass drawing every frame, the timeline and
its media all count); the cases run interleaved, --repeat rounds. Seconds are the median of the
rounds; a ratio is the median of each round's case over that round's `none` (paired: a slow
spell on a shared machine hits both). CPU is user + system of the process and its ffmpeg
children: wall time swings by tens of percent from run to run there, CPU time far less.
`--before TREE` runs every case in another checkout too (e.g. `git worktree add /tmp/b main`),
interleaved with this one, and prints its table first. Prints a table.

    .venv/bin/python scripts/bench/captions.py                  # 30 s, slides, 3 rounds
    .venv/bin/python scripts/bench/captions.py --seconds 60 --repeat 5 --mode portrait
    .venv/bin/python scripts/bench/captions.py --cases none karaoke karaoke+timeline --before /tmp/b
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
    parser.add_argument("--before", type=Path, help="another checkout to run every case in too")
    args = parser.parse_args()
    cases = ["none", *[c for c in args.cases if c != "none"]]  # the baseline always runs
    trees = {"before": args.before.resolve(), "this tree": None} if args.before else {"this tree": None}
    print(f"draft preset, 1280x720 25 fps, {args.mode}, ~{args.seconds:g} s narration, "
          f"{args.repeat} rounds, {os.cpu_count()} CPU cores")
    rows = {(tree, name): [] for tree in trees for name in cases}  # [(wall, cpu), ...] a round each
    audio = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = portrait(work / "portrait.png")
        for round_ in range(args.repeat):  # interleaved: a slow spell hits every case alike
            for name in cases:
                for label, tree in trees.items():
                    case = work / f"{label.replace(' ', '_')}_{name}_{round_}"
                    case.mkdir()
                    extra = [a.format(work=case) for a in CASES[name]]
                    before = cpu_seconds()
                    row = run_case(args.seconds, args.mode, case, image, extra, tree)
                    rows[label, name].append((row["wall"], cpu_seconds() - before))
                    audio = row["audio"]
    for label in trees:
        print(f"\n{label}: {audio:.1f} s of video")
        print(f"{'case':<17} {'wall':>8} {'CPU':>8} {'CPU/none':>9} {'wall/none':>9}")
        base = rows[label, "none"]
        for name in cases:
            runs = rows[label, name]
            ratio = lambda k: statistics.median(r[k] / b[k] for r, b in zip(runs, base))
            print(f"{name:<17} {statistics.median(r[0] for r in runs):>7.1f}s "
                  f"{statistics.median(r[1] for r in runs):>7.1f}s {ratio(1):>9.3f} {ratio(0):>9.3f}")


def cpu_seconds() -> float:
    """User + system CPU time of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
