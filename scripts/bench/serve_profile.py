"""Profile creation through `podium serve` (POST /api/profiles), as the page sends it: wall time
of the request, by whether the transcript is given or written by speech recognition (a
random-weight Whisper at whisper-tiny's real size, tests/tiny_whisper.py, in the server's child
process). Target (issue 23): <= 20 s on 2 cores without LoRA training.

    .venv/bin/python scripts/bench/serve_profile.py [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# this folder off the path: a script here named like a standard module (profile.py) would hide it
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import requests

    from conftest import podium_server
    from test_profiles import photo, speechlike, wav
    from tiny_whisper import build

    root = Path(tempfile.mkdtemp(prefix="podium-bench-serve-profile-"))
    build(root / "models" / "captions" / "whisper-tiny", real_size=True)
    os.environ["PODIUM_MODELS_DIR"] = str(root / "models")
    face, voice = photo(root / "me.jpg"), wav(root / "me.wav", speechlike(12))
    print("| profile (1 image 512x512, 12 s sample) | median s | runs |\n|---|---|---|")
    with podium_server(root / "data", tmpdir=root / "tmp") as server:
        for case, text in (("transcript given", "Hello there."), ("transcript by speech recognition", None)):
            times = []
            for run in range(args.repeat):
                data = {"name": f"p{len(times)}-{run}-{'given' if text else 'heard'}", "consent": "I, A, agree",
                        **({"voice_text": text} if text else {})}
                start = time.perf_counter()
                answer = requests.post(server["url"] + "/api/profiles", data=data, headers={"Origin": server["url"]},
                                       files=[("image", ("me.jpg", face.read_bytes())),
                                              ("voice", ("me.wav", voice.read_bytes()))], timeout=600)
                times.append(time.perf_counter() - start)
                answer.raise_for_status()
            print(f"| {case} | {statistics.median(times):.2f} | {len(times)} |")


if __name__ == "__main__":
    main()
