#!/usr/bin/env python3
"""One cinema segment through ComfyUI's own Wan2.2-S2V code: seconds of compute per second of
video and peak memory, one table.

The models are ComfyUI's own modules (comfy.ldm.wan.model.WanModel_S2V, the Wan 2.1 VAE,
wav2vec2-large) at their released sizes with RANDOM weights made on the device (nothing is
downloaded or written; the cost of a step does not depend on the weights' values), loaded
through ComfyUI's loaders (comfy.sd.load_diffusion_model_state_dict, comfy.sd.VAE,
load_audio_encoder_from_sd) and run as the cinema_s2v graph runs them: AudioEncoderEncode,
WanSoundImageToVideo, KSampler (uni_pc, `--steps`, CFG 1 as with a 4-step LoRA; 2 passes a
step with --cfg above 1), VAEDecode. The umt5-xxl text encoder is left out: it runs once per
segment on two short prompts (its outputs are random tensors of its exact shape here).

    COMFYUI_DIR=~/ComfyUI .venv/bin/python scripts/bench/cinema.py              # CUDA: real size, 832x480, 77 frames, 4 steps
    COMFYUI_DIR=~/ComfyUI .venv/bin/python scripts/bench/cinema.py --dtype fp8  # the 24 GB variant's weights
    COMFYUI_DIR=~/ComfyUI .venv/bin/python scripts/bench/cinema.py --device cpu # smoke: tiny widths, 64x64, 5 frames
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

REAL = {"dim": 5120, "ffn_dim": 13824, "num_heads": 40, "num_layers": 40}  # Wan2.2-S2V-14B
TINY = {"dim": 128, "ffn_dim": 256, "num_heads": 1, "num_layers": 1}  # CPU smoke only
NATIVE_FPS = 16


def random_state(module, device: str, dtype, seed: int = 0) -> dict:
    """The (meta) module's state dict filled on `device`: norms 1, biases 0, weights
    N(0, 1/fan_in), the rest N(0, 0.02): values that keep activations finite."""
    import torch
    gen = torch.Generator(device=device).manual_seed(seed)
    state = {}
    for name, meta in module.state_dict().items():
        shape, leaf = tuple(meta.shape), name.rsplit(".", 1)[-1]
        if leaf == "bias":
            value = torch.zeros(shape, device=device, dtype=dtype)
        elif "norm" in name or leaf in ("gamma", "weights") or name.endswith("weight_g"):
            value = torch.ones(shape, device=device, dtype=dtype)
        else:
            std = (1 / max(1, meta.numel() // shape[0])) ** 0.5 if len(shape) >= 2 and "modulation" not in name else 0.02
            value = torch.empty(shape, device=device, dtype=dtype).normal_(0, std, generator=gen)
        state[name] = value
    return state


def peak_gb(device: str) -> float:
    import torch
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 1024 ** 3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # KB -> GB (Linux)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--comfyui-dir", type=Path, default=os.environ.get("COMFYUI_DIR"),
                   help="ComfyUI source tree (default $COMFYUI_DIR)")
    p.add_argument("--device", default=None, help="cuda (default when usable) or cpu (smoke size)")
    p.add_argument("--size", default=None, metavar="WxH", help="default 832x480 (CUDA), 64x64 (CPU)")
    p.add_argument("--frames", type=int, default=None, help="4n+1 frames at 16 fps (default 77 CUDA, 5 CPU)")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default 4 CUDA, 2 CPU)")
    p.add_argument("--cfg", type=float, default=1.0, help="1: one pass a step (4-step LoRA); above: two")
    p.add_argument("--dtype", choices=["bf16", "fp8"], default="bf16",
                   help="diffusion model weights: bf16, or fp8_e4m3fn as UNETLoader's weight_dtype")
    args = p.parse_args()
    if not args.comfyui_dir or not (Path(args.comfyui_dir) / "main.py").is_file():
        p.error("give --comfyui-dir (or set COMFYUI_DIR) to a ComfyUI source tree")
    sys.path.insert(0, str(Path(args.comfyui_dir).resolve()))
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    real = device.startswith("cuda")
    width, height = (int(v) for v in (args.size or ("832x480" if real else "64x64")).split("x"))
    frames = args.frames or (77 if real else 5)
    steps = args.steps or (4 if real else 2)

    import comfy.cli_args
    comfy.cli_args.args.cpu = not real
    import comfy.model_management as mm
    import comfy.ops
    import comfy.sd
    import nodes
    from comfy.audio_encoders.audio_encoders import load_audio_encoder_from_sd
    from comfy.audio_encoders.wav2vec2 import Wav2Vec2Model
    from comfy.ldm.wan.model import WanModel_S2V
    from comfy.ldm.wan.vae import WanVAE
    from comfy_extras.nodes_wan import WanSoundImageToVideo

    ops = comfy.ops.disable_weight_init
    build_dtype = torch.bfloat16 if real else torch.float32
    rows, started = [], time.perf_counter()

    def stage(name, func):
        t0 = time.perf_counter()
        out = func()
        if real:
            torch.cuda.synchronize()
        rows.append((name, time.perf_counter() - t0, peak_gb(device)))
        return out

    def load_unet():
        sd = random_state(WanModel_S2V(**(REAL if real else TINY), device="meta", operations=ops), device, build_dtype)
        options = {"dtype": torch.float8_e4m3fn} if args.dtype == "fp8" else {}
        return comfy.sd.load_diffusion_model_state_dict(sd, model_options=options)

    def load_vae():
        with torch.device("meta"):
            meta = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                          temperal_downsample=[False, True, True], dropout=0.0)
        return comfy.sd.VAE(sd=random_state(meta, device, torch.float32))

    def load_audio():
        meta = Wav2Vec2Model(embed_dim=1024, num_heads=16, num_layers=24, conv_norm=True, conv_bias=True,
                             do_normalize=True, do_stable_layer_norm=True, device="meta", operations=ops)
        return load_audio_encoder_from_sd(random_state(meta, device, torch.float32))

    print(f"loading Wan2.2-S2V ({'14B' if real else 'tiny'}, {args.dtype}), the Wan 2.1 VAE and wav2vec2-large "
          f"with random weights on {device} ...", flush=True)
    model, vae, audio_encoder = load_unet(), load_vae(), load_audio()
    mm.soft_empty_cache()
    if real:
        torch.cuda.reset_peak_memory_stats()
    seconds = frames / NATIVE_FPS
    gen = torch.Generator().manual_seed(0)
    audio = {"waveform": torch.randn(1, 1, int(seconds * 16000), generator=gen) * 0.1, "sample_rate": 16000}
    portrait = torch.rand(1, height, width, 3, generator=gen)
    context = lambda: [[torch.randn(1, 512, 4096, generator=gen) * 0.02, {}]]  # umt5-xxl's output shape
    features = stage("audio encoder (wav2vec2-large)", lambda: audio_encoder.encode_audio(audio["waveform"], 16000))
    positive, negative, latent = stage("conditioning (WanSoundImageToVideo)", lambda: WanSoundImageToVideo.execute(
        context(), context(), vae, width, height, frames, 1, ref_image=portrait, audio_encoder_output=features).args)
    (sampled,) = stage(f"sampling ({steps} steps, cfg {args.cfg:g})", lambda: nodes.common_ksampler(
        model, 0, steps, args.cfg, "uni_pc", "simple", positive, negative, latent))
    images = stage("VAE decode", lambda: vae.decode(sampled["samples"]))
    compute = sum(r[1] for r in rows)
    made = images.shape[-4] if images.ndim >= 4 else frames
    print(f"\none segment: {width}x{height}, {frames} frames at {NATIVE_FPS} fps ({seconds:.2f} s of video, "
          f"{made} frames decoded), device {device}, weights {args.dtype}")
    table = [("stage", "seconds", "peak memory (GB)")] + [(n, f"{s:.2f}", f"{g:.2f}") for n, s, g in rows]
    table.append(("total (after loading)", f"{compute:.2f}", f"{max(r[2] for r in rows):.2f}"))
    widths = [max(len(r[i]) for r in table) for i in range(3)]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\n{compute / seconds:.1f} s of compute per second of video "
          f"({'peak VRAM: torch allocated' if real else 'CPU smoke size; peak: process RSS'}); "
          f"wall incl. loading {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
