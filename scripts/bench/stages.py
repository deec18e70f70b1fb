#!/usr/bin/env python3
"""Neural stages at their real sizes: time and peak memory of each, one table.

Every model is built here at its released architecture with RANDOM weights (nothing is
downloaded; the cost of a forward pass does not depend on the weights' values): SD1.5 (UNet,
VAE, CLIP text encoder), F5TTS_v1_Base (the shipped config) + vocos-mel-24khz, Wav2Lip
exported to ONNX, Real-ESRGAN RRDBNet (23 blocks). Each stage then runs through the pack's
own loader and engine, timed by the memory manager's stage reports (CUDA: peak allocated by
torch, not ONNX Runtime's own arena; CPU: peak RSS growth). Models are evicted after each
stage, so a row is that stage alone. Built models are kept in --workdir for the next run.

    .venv/bin/python scripts/bench/stages.py    # CUDA if usable (512 px, 30 s, NFE 32), else CPU
    .venv/bin/python scripts/bench/stages.py --size 256 --nfe 16 --upscale-frames 4
    .venv/bin/python scripts/bench/stages.py --only voice lipsync --device cpu
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import functools
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import test_tts_f5  # noqa: E402
from podium import memory, profiling  # noqa: E402
from podium.engines import lipsync, presenter_image, upscale  # noqa: E402
from podium.engines import output as media  # noqa: E402
from podium.engines import voice_clone as tts_f5  # noqa: E402
from podium.engines.script import Script, Segment  # noqa: E402
from podium.engines.wav2lip_net import export_onnx  # noqa: E402
from test_lipsync import FACE_BOX, SIZE as FACE_SIZE  # noqa: E402
from test_lipsync import Still, calibrated_wav2lip, draw_face, speech_of  # noqa: E402
from test_presenter_image import clip_tokenizer, hub_layout, unet, vae  # noqa: E402
from test_upscale import build as build_esrgan  # noqa: E402

STAGES = ("image", "voice", "lipsync", "upscale", "encode")
FPS, CLIP_S = 25, 30.0  # the balanced preset's frame rate; the clip the estimate is for
WORDS = "every good lecture starts with a question worth asking and an answer worth hearing".split()


def cached(folder: Path, build) -> Path:
    """`build(folder)` unless an earlier run finished it (random weights: any copy will do). It
    runs in a child process, so the memory it freed does not hide the stages' RSS growth."""
    if not (folder / ".built").exists():
        print(f"building {folder.name} (random weights, real size) ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        child = multiprocessing.get_context("spawn").Process(target=build, args=(folder,))
        child.start()
        child.join()
        if child.exitcode:
            sys.exit(f"building {folder} failed")
        (folder / ".built").touch()
    return folder


def build_sd15(folder: Path) -> None:
    """SD1.5's real UNet / VAE / CLIP-L configs, saved as the hub's fp16 variant files."""
    import diffusers
    from transformers import CLIPTextConfig, CLIPTextModel
    net = unet(sample_size=64, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
               down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
               up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
               cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32)
    autoencoder = vae(block_out_channels=(128, 256, 512, 512), layers_per_block=2, sample_size=512,
                      down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                      norm_num_groups=32)
    text = CLIPTextModel(CLIPTextConfig(  # the tokenizer is a tiny stand-in; the model is CLIP-L's
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=768, bos_token_id=515, eos_token_id=516, pad_token_id=516))
    scheduler = diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                        skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False)
    pipe = diffusers.StableDiffusionPipeline(
        unet=net, vae=autoencoder, text_encoder=text, tokenizer=clip_tokenizer(folder / "_tok"),
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(folder, variant="fp16")
    hub_layout(folder, folder / "_tok", "tokenizer")


def build_f5(folder: Path) -> None:
    """The tests' F5 files, with F5TTS_v1_Base's arch and vocos-mel-24khz's real backbone."""
    shipped = Path(tts_f5._configs_dir()) / "F5TTS_v1_Base.yaml"
    test_tts_f5.ARCH = yaml.safe_load(shipped.read_text())["model"]["arch"]
    vocos = test_tts_f5.VOCOS = copy.deepcopy(test_tts_f5.VOCOS)
    vocos["backbone"]["init_args"].update(dim=512, intermediate_dim=1536, num_layers=8)
    vocos["head"]["init_args"]["dim"] = 512
    test_tts_f5.build_tiny_f5(folder)  # (its vocab.txt is ~90 symbols, the release's 2545: 1.3M params)


def build_wav2lip(folder: Path) -> None:
    export_onnx(calibrated_wav2lip(), folder / "wav2lip_gan.onnx")


def build_realesrgan(folder: Path, scale: int) -> None:
    build_esrgan(folder / "model.pth", scale, num_block=23)  # RealESRGAN_x{2,4}plus: 23 RRDB blocks


def narration(seconds: float) -> Script:
    """Sentences of about 7 s that F5 makes `seconds` long with the lead-in and pauses: it sizes
    speech by the reference's bytes per second (the tests' 4 s reference, + F5's 50 ms and ". ")."""
    n = max(1, round(seconds / 7))
    per = (seconds - 0.25 - 0.3 * (n - 1)) / n * (len(test_tts_f5.REF_TEXT.encode()) + 1) / 4.05
    filler = " ".join(WORDS * 20)  # random weights: only the length counts
    return Script("bench", [Segment([(filler[:max(round(per) - 1, 1)].rstrip() + ".").capitalize()] * n)])


def release(manager) -> None:
    """Evict every model and give freed heap back to the OS (glibc), so the next stage's RSS
    growth is its own rather than hidden by reused pages."""
    manager.evict()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class Frames:
    """A Visual over frames already rendered (each stage is timed on its own)."""

    def __init__(self, frames: list[np.ndarray]):
        self.frames, (self.height, self.width) = frames, frames[0].shape[:2]

    def render(self, t: float) -> np.ndarray:
        return self.frames[min(int(round(t * FPS)), len(self.frames) - 1)]


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if cuda else "cpu", help="cuda, cuda:N or cpu")
    p.add_argument("--size", type=int, help="image and frame side, px (default 512 on CUDA, 256 on CPU)")
    p.add_argument("--seconds", type=float, help="speech to make (default 30 on CUDA, 5 on CPU)")
    p.add_argument("--steps", type=int, default=4, help="presenter image steps (default 4)")
    p.add_argument("--nfe", type=int, help="F5 NFE steps (default 32 on CUDA, 8 on CPU)")
    p.add_argument("--upscaler", choices=["x2", "x4"], default="x2",
                   help="Real-ESRGAN x2plus (balanced, default) or x4plus")
    p.add_argument("--region", choices=upscale.REGIONS, default="face",
                   help="what is upscaled (balanced, default: face)")
    p.add_argument("--upscale-frames", type=int, help="upscale only the first N frames "
                   "(default: all on CUDA, 8 on CPU; the estimate scales by frames)")
    p.add_argument("--only", nargs="+", choices=STAGES, default=list(STAGES), metavar="STAGE",
                   help=f"stages to run, of {' '.join(STAGES)}")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "podium-bench")
    a = p.parse_args()
    gpu = a.device.startswith("cuda")
    size, seconds = a.size or (512 if gpu else 256), a.seconds or (30.0 if gpu else 5.0)
    nfe, up_frames = a.nfe or (32 if gpu else 8), a.upscale_frames or (0 if gpu else 8)
    memory._manager = manager = memory.ModelManager(device=a.device)  # the process-wide manager, on --device
    where = (f"{a.device} ({torch.cuda.get_device_name()})" if gpu
             else f"CPU, {torch.get_num_threads()} threads (no GPU: small sizes)")
    print(f"Podium stage benchmark on {where}: real architectures, RANDOM weights (nothing downloaded), "
          f"{size}x{size}, {seconds:g} s of speech", flush=True)
    work, runs = a.workdir, []  # runs: (report, scale of its time in a 30 s clip)

    def stage(name: str, func, scale: float = 1.0):
        print(f"- {name} ...", end=" ", flush=True)
        with profiling.stage(name) as report:
            out = func()
        print(f"{report.wall_s:.1f} s", flush=True)
        runs.append([report, scale])
        return out

    box = tuple(round(v * size / FACE_SIZE) for v in FACE_BOX)  # where draw_face puts the face
    speech, frames = None, [draw_face(size)]
    if "image" in a.only:
        sd15 = cached(work / "sd15", build_sd15)
        pipe = stage("image load (SD1.5 fp16 files)", lambda: presenter_image.load_pipeline(sd15))
        stage(f"image draw {size}x{size}, {a.steps} steps, CFG", lambda: presenter_image.draw(
            pipe, presenter_image.presenter_prompt(), width=size, height=size, steps=a.steps, seed=1))
        del pipe
        release(manager)
    if "voice" in a.only:
        f5_dir = cached(work / "f5", build_f5)
        f5 = stage("voice load (F5TTS_v1_Base + Vocos)", lambda: tts_f5.load_f5(
            f5_dir / "model_tiny.safetensors", f5_dir / "vocab.txt", f5_dir / "vocos", "F5TTS_v1_Base"))
        speech = stage("voice clone", lambda: tts_f5.clone(
            f5, narration(seconds), f5_dir / "ref.wav", test_tts_f5.REF_TEXT, nfe_step=nfe, seed=1))
        runs[-1][0].name = f"voice clone {speech.duration:.1f} s of speech, nfe {nfe}"
        runs[-1][1] = CLIP_S / speech.duration
        del f5
        release(manager)
    speech = speech or speech_of(seconds, tts_f5.SAMPLE_RATE)
    n_frames = media.frames_for(speech.duration, FPS)
    clip_scale = CLIP_S * FPS / n_frames
    if "lipsync" in a.only:
        w2l = cached(work / "wav2lip", build_wav2lip)
        session = stage("lipsync load (Wav2Lip ONNX)", lambda: lipsync.load_wav2lip(w2l / "wav2lip_gan.onnx"))
        visual = lipsync.LipSyncVisual(Still(frames[0]), speech, session, fps=FPS, face_box=box)
        frames = stage(f"lipsync {n_frames} frames {size}x{size}, batch 16",
                       lambda: [visual.render(i / FPS) for i in range(n_frames)], clip_scale)
        del session, visual
        release(manager)
    if "upscale" in a.only:
        scale = int(a.upscaler[1])
        pth = cached(work / f"esrgan_{a.upscaler}", functools.partial(build_realesrgan, scale=scale))
        model = stage(f"upscale load (Real-ESRGAN {a.upscaler}plus)",
                      lambda: upscale.load_upscaler(pth / "model.pth"))
        todo = min(up_frames or n_frames, n_frames)
        up = upscale.UpscaleVisual(Frames(frames), model, region=a.region, out_size=(size, size),
                                   detector=lambda rgb: box)
        done = stage(f"upscale {a.upscaler}plus {a.region}, {todo} of {n_frames} frames",
                     lambda: [up.render(i / FPS) for i in range(todo)], CLIP_S * FPS / todo)
        frames = done + [frames[min(i, len(frames) - 1)] for i in range(todo, n_frames)]
        del model, up
        release(manager)
    if "encode" in a.only:
        out = work / "bench.mp4"
        stage(f"encode {n_frames} frames {size}x{size} H.264/AAC", lambda: media.encode_video(
            out, Frames(frames).render, (size, size), speech.samples, speech.sample_rate, FPS), clip_scale)

    total = sum(r.wall_s for r, _ in runs)
    estimate = sum(r.wall_s * s for r, s in runs)
    print()
    print(profiling.format_reports([r for r, _ in runs]))
    peak = max((r.peak_bytes for r, _ in runs), default=0) / 2**30
    print(f"total {total:.1f} s wall on {where}, highest stage peak {peak:.2f} GB. EXTRAPOLATED, "
          f"not measured: a {CLIP_S:g} s clip on the balanced graph at these settings would take "
          f"~{estimate:.0f} s (loads and the image once, as measured; voice, lip sync, upscale and "
          f"encode scaled to {CLIP_S:g} s = {CLIP_S * FPS:g} frames)")


if __name__ == "__main__":
    main()
