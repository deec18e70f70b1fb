"""Soundtrack mixing: wall time and peak memory of mixing a narration with a looped music track
(podium.engines.soundtrack.mix: fit, duck, limit, two or more ffmpeg loudness measurements), by
narration length. CPU only (no model): the same code the orchestrator runs at stitch time.

    .venv/bin/python scripts/bench/mix.py [--minutes 1 5 10]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "custom_nodes"))
from podium.engines import soundtrack  # noqa: E402

RATE = 48000


def narration(minutes: float, rng) -> np.ndarray:
    """Speech-like bursts (noise at a syllable rhythm), 2-4 s each, with 0.3-1.5 s pauses."""
    parts, total = [], int(minutes * 60 * RATE)
    while sum(len(p) for p in parts) < total:
        n = int(rng.uniform(2, 4) * RATE)
        t = np.arange(n) / RATE
        parts.append((0.2 * rng.standard_normal(n) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)) ** 2).astype(np.float32))
        parts.append(np.zeros(int(rng.uniform(0.3, 1.5) * RATE), np.float32))
    return np.concatenate(parts)[:total]


def track(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 330 * t + 1)).astype(np.float32)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (ffmpeg's meter), so the figure
    means something on a shared, busy machine too."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 5])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    music = track(47.3)
    print(f"{'narration':>10} {'wall s':>8} {'cpu s':>7} {'x real time':>12} {'peak MiB':>9} {'LUFS':>6} {'dBTP':>6}")
    for minutes in args.minutes:
        voice = narration(minutes, rng)
        tracemalloc.start()
        started, cpu = time.perf_counter(), _cpu()
        mixed = soundtrack.mix(voice, RATE, music)
        wall, cpu = time.perf_counter() - started, _cpu() - cpu
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        loudness, true_peak = soundtrack.measure(mixed, RATE)
        print(f"{minutes:>8g} m {wall:>8.1f} {cpu:>7.1f} {minutes * 60 / wall:>12.0f} {peak / 2**20:>9.0f} "
              f"{loudness:>6.1f} {true_peak:>6.1f}")


if __name__ == "__main__":
    main()
