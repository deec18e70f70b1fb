#!/usr/bin/env python3
"""Podium Music File on a small upload holding a long track (issue 18.7): peak memory of the
node's process and the samples it keeps, one table. An hour of silent FLAC (0.7 MB) is made
with ffmpeg; each case runs in a fresh process (peak RSS is the whole process's).

    .venv/bin/python scripts/bench/music_file.py [--hours 1]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASE = r"""
import json, resource, sys
import numpy as np
from podium.nodes.soundtrack import PodiumMusicFile
from podium.engines import soundtrack
path, case = sys.argv[1], sys.argv[2]
voice = {"waveform": np.zeros((1, 1, 120 * 16000), np.float32), "sample_rate": 16000}
if case == "node, voice linked (2 min)":
    (m,) = PodiumMusicFile().load(path, voice=voice); n = m["waveform"].shape[-1]
elif case == "node, nothing linked":
    (m,) = PodiumMusicFile().load(path); n = m["waveform"].shape[-1]
else:
    n = len(soundtrack.decode(path, 48000))
print(json.dumps({"samples": int(n), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""
CASES = ["node, voice linked (2 min)", "node, nothing linked", "engine decode, no cap (whole file)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    args = parser.parse_args()
    from podium.engines.ffmpeg_exe import find_ffmpeg

    with tempfile.TemporaryDirectory() as tmp:
        flac = Path(tmp) / "long.flac"
        subprocess.run([find_ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
                        "-t", str(args.hours * 3600), "-c:a", "flac", str(flac)], check=True)
        print(f"{flac.stat().st_size / 1e6:.2f} MB FLAC, {args.hours:g} h of silence; samples at 48 kHz float32")
        print(f"{'case':38} {'seconds kept':>12} {'samples MB':>10} {'peak RSS MB':>11}")
        for case in CASES:
            out = subprocess.run([sys.executable, "-c", CASE, str(flac), case], check=True,
                                 capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"{case:38} {row['samples'] / 48000:12.0f} {row['samples'] * 4 / 1e6:10.0f} {row['peak_mb']:11.0f}")


if __name__ == "__main__":
    main()
