#!/usr/bin/env python3
"""MuseTalk 1.5 lip sync at its real size: frames per second and peak memory, one table.

The UNet (musetalk.json: ~0.8 B parameters), sd-vae-ft-mse's AutoencoderKL and Whisper-tiny are
built at their released architectures with RANDOM weights (nothing is downloaded; a forward
pass costs the same whatever the weights) in the published file layout (tests/tiny_musetalk.py),
then run through the pack's own loader and MuseTalkVisual over a drawn face, as a video is
written: one row per batch size. CUDA: fp16, peak allocated by torch; CPU: fp32, peak RSS
growth. Built files are kept in --workdir for the next run (about 1.9 GB).

    .venv/bin/python scripts/bench/musetalk.py                  # CUDA if usable, else CPU
    .venv/bin/python scripts/bench/musetalk.py --seconds 20 --batch 8 16 32
    .venv/bin/python scripts/bench/musetalk.py --device cpu --frames 4 --batch 2
    .venv/bin/python scripts/bench/musetalk.py --batch 8 --mesh   # + framing by the face mesh
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "custom_nodes"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tiny_musetalk  # noqa: E402
from podium import memory, profiling  # noqa: E402
from podium.engines.musetalk import MuseTalkFiles, MuseTalkModels, MuseTalkVisual  # noqa: E402
from podium.engines.speech import Speech  # noqa: E402
from test_lipsync import FACE_BOX, SIZE as FACE_SIZE, Still, draw_face  # noqa: E402

FPS = 25


def build(folder: Path) -> None:
    tiny_musetalk.build(folder, real=True, unet_dtype=torch.float16)  # fp16 file: half the disk


def cached(folder: Path) -> Path:
    """The real-size files, built in a child process unless an earlier run finished them."""
    if not (folder / ".built").exists():
        print(f"building real-size MuseTalk files in {folder} (random weights) ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        child = multiprocessing.get_context("spawn").Process(target=build, args=(folder,))
        child.start()
        child.join()
        if child.exitcode:
            sys.exit(f"building {folder} failed")
        (folder / ".built").touch()
    return folder


def speech(seconds: float, rate: int = 16000) -> Speech:
    """Loud, pause-free noise (every frame runs the model either way; pauses do too)."""
    rng = np.random.default_rng(0)
    samples = (0.2 * rng.standard_normal(int(seconds * rate))).astype(np.float32)
    return Speech(samples, rate, [], [(0.0, seconds)])


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if cuda else "cpu", help="cuda, cuda:N or cpu")
    p.add_argument("--size", type=int, help="frame side, px (default 512 on CUDA, 256 on CPU)")
    p.add_argument("--frames", type=int, help="frames per row (default 250 = 10 s on CUDA, 4 on CPU)")
    p.add_argument("--batch", type=int, nargs="+", help="batch sizes, one row each (default 8 16 on CUDA, 2 on CPU)")
    p.add_argument("--mesh", action="store_true",
                   help="also a row per batch size framed by the face mesh each frame (no face_box)")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "podium-bench-musetalk")
    a = p.parse_args()
    gpu = a.device.startswith("cuda")
    size = a.size or (512 if gpu else 256)
    n_frames = a.frames or (250 if gpu else 4)
    batches = a.batch or ([8, 16] if gpu else [2])
    memory._manager = manager = memory.ModelManager(device=a.device)
    where = (f"{a.device} ({torch.cuda.get_device_name()}), fp16" if gpu
             else f"CPU, {torch.get_num_threads()} threads, fp32 (no GPU: a few frames)")
    print(f"MuseTalk 1.5 benchmark on {where}: real architectures, RANDOM weights, "
          f"{size}x{size} frames, {n_frames} frames per row", flush=True)

    root = cached(a.workdir)
    files = MuseTalkFiles(root / tiny_musetalk.UNET_DIR / "unet.pth",
                          root / tiny_musetalk.UNET_DIR / "musetalk.json",
                          root / tiny_musetalk.VAE_DIR, root / tiny_musetalk.WHISPER_DIR)
    with profiling.stage("load UNet + VAE + Whisper-tiny") as load:
        models = MuseTalkModels(files).load_all()
    params = sum(p.numel() for p in models.unet().parameters()) / 1e6
    rows, fps_of = [load], {}
    box = tuple(round(v * size / FACE_SIZE) for v in FACE_BOX)
    base = Still(draw_face(size))
    audio = speech(n_frames / FPS + 0.01)
    runs = [(b, box, "") for b in batches] + [(b, None, ", face mesh") for b in batches if a.mesh]
    for batch, face_box, how in runs:
        visual = MuseTalkVisual(base, audio, models, FPS, batch_size=batch, face_box=face_box,
                                face_detector="auto")
        visual.render(0.0)  # warm-up batch (kernels, the first 30 s of audio features)
        with profiling.stage(f"lip sync {n_frames} frames, batch {batch}{how}") as report:
            start = time.perf_counter()
            for i in range(n_frames):
                visual.render(i / FPS)
            if gpu:
                torch.cuda.synchronize()
            fps_of[report.name] = n_frames / (time.perf_counter() - start)
        rows.append(report)
    print()
    print(profiling.format_reports(rows))
    print()
    for name, fps in fps_of.items():
        print(f"{name}: {fps:.3g} frames/s, {1 / fps:.3g} s/frame ({fps / FPS:.3g}x real time at {FPS} fps)")
    print(f"UNet {params:.0f} M parameters; peak memory per row: "
          f"{'torch.cuda.max_memory_allocated' if gpu else 'RSS growth'} during the row")
    del manager


if __name__ == "__main__":
    main()
