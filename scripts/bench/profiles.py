"""Profile creation on CPU: wall time of `podium profile create` as a user runs it (a fresh
process each time: Python start, face check, voice sample decode/check/trim, transcription,
manifest), by what the profile holds. Transcription runs a random-weight Whisper at
whisper-tiny's real size (tests/tiny_whisper.py, 39 M parameters) in its child process: the
same work as the real model, except that random weights never stop by themselves: its
generation config caps them at 44 tokens, about what 15 s of speech takes (the engine's own
cap is 160).
Target (issue 23): <= 20 s on 2 cores without LoRA training.

    .venv/bin/python scripts/bench/profiles.py [--repeat 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "custom_nodes"))

import tiny_whisper  # noqa: E402
from test_profiles import photo, speechlike, wav  # noqa: E402

CLI = [sys.executable, "-c", "import sys; from orchestrator.cli.main import main; sys.exit(main())"]
CONSENT = "I, Bench Mark, agree that Podium may make videos with my face and voice"


def create(env: dict, *args) -> float:
    started = time.perf_counter()
    done = subprocess.run([*CLI, "profile", "create", "bench", "--force", "--consent", CONSENT, *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"profile create failed: {done.stderr.strip()}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podium-bench-profile-") as work:
        work = Path(work)
        env = dict(os.environ, PODIUM_DATA_DIR=str(work / "data"), PODIUM_MODELS_DIR=str(work / "models"),
                   PYTHONPATH=os.pathsep.join([str(REPO / "custom_nodes"), str(REPO)]))
        tiny_whisper.build(work / "models" / "captions" / "whisper-tiny", real_size=True)
        me, big = photo(work / "me.jpg"), photo(work / "big.jpg", side=4480)
        short, long = wav(work / "short.wav", speechlike(8)), wav(work / "long.wav", speechlike(28))
        cases = [
            ("1 portrait (512x512)", ["--image", me]),
            ("1 portrait (20 MP, downscaled)", ["--image", big]),
            ("portrait + 8 s voice, --voice-text", ["--image", me, "--voice", short, "--voice-text", "hello"]),
            ("portrait + 28 s voice (trimmed), --voice-text", ["--image", me, "--voice", long, "--voice-text", "hi"]),
            ("portrait + 28 s voice, transcribed (whisper-tiny size)", ["--image", me, "--voice", long]),
        ]
        print(f"profile create, wall seconds (median of {args.repeat}; {os.cpu_count()} CPUs visible)")
        print(f"{'case':58} {'median':>8} {'min':>8}")
        for label, case in cases:
            times = [create(env, *case) for _ in range(args.repeat)]
            print(f"{label:58} {statistics.median(times):8.2f} {min(times):8.2f}")


if __name__ == "__main__":
    main()
