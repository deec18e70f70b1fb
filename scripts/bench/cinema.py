#!/usr/bin/env python3
"""The cinema graphs through ComfyUI's own Wan code: per graph (S2V, HuMo, InfiniteTalk's base)
and size (480p, 720p), seconds of compute per second of video on the distilled path (lightx2v
LoRA: 4 steps S2V / InfiniteTalk, 6 HuMo, cfg 1: one model pass a step) and on full steps (20
S2V / 40 InfiniteTalk / 30 HuMo, cfg above 1: two passes a step), and peak VRAM; one table.

The models are ComfyUI's own modules (comfy.ldm.wan.model.WanModel_S2V, HumoWanModel, WanModel
i2v: InfiniteTalk's Wan2.1-I2V-14B base without its audio patch; the Wan 2.1 VAE,
wav2vec2-large) at their released sizes with RANDOM weights made on the device (nothing is
downloaded or written; a step's cost does not depend on the weights' values), loaded through
ComfyUI's loaders with fp8 weights as the templates' files are (--dtype bf16 for the 16-bit
files). One generation of the graph's trained length (S2V 77, HuMo 97, InfiniteTalk 81 frames)
is conditioned, sampled for `--measure-steps` steps with cfg 1 and decoded; the time of one
model pass is measured and the distilled and full paths are counted from it (a LoRA merged into
the weights costs nothing a step). The umt5-xxl text encoder is left out (it runs once per
segment on two short prompts; random tensors of its exact output shape stand in); HuMo's
whisper-large-v3 features are random tensors of their shape too.

    COMFYUI_DIR=~/ComfyUI .venv/bin/python scripts/bench/cinema.py                 # CUDA: all graphs, 480p and 720p
    COMFYUI_DIR=~/ComfyUI .venv/bin/python scripts/bench/cinema.py --graphs s2v --sizes 832x480
    COMFYUI_DIR=~/ComfyUI .venv/bin/python scripts/bench/cinema.py --smoke         # CPU: tiny widths, 64x64, 5 frames
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


GRAPHS = {  # name: (native fps, trained frames, distilled steps, full steps)
    "s2v": (16, 77, 4, 20), "humo": (25, 97, 6, 30), "infinitetalk": (25, 81, 4, 40)}


def build_model(name: str, dims: dict, ops):
    from comfy.ldm.wan.model import HumoWanModel, WanModel, WanModel_S2V
    if name == "s2v":
        return WanModel_S2V(**dims, device="meta", operations=ops)
    if name == "humo":
        return HumoWanModel(**dims, device="meta", operations=ops)
    return WanModel(model_type="i2v", in_dim=36, **dims, device="meta", operations=ops)


def conditioning(name, vae, width, height, frames, portrait, audio_features, context, gen):
    """(positive, negative, latent) as the graph's video node makes them."""
    import torch
    from comfy_extras import nodes_wan
    if name == "s2v":
        return nodes_wan.WanSoundImageToVideo.execute(context(), context(), vae, width, height, frames, 1,
                                                      ref_image=portrait, audio_encoder_output=audio_features).args
    if name == "humo":
        seconds = frames / 25
        layers = tuple(torch.randn(1, 1500, 1280, generator=gen) * 0.1 for _ in range(33))
        whisper = {"encoded_audio_all_layers": layers, "audio_samples": int(seconds * 16000)}
        return nodes_wan.WanHuMoImageToVideo.execute(context(), context(), vae, width, height, frames, 1,
                                                     ref_image=portrait, audio_encoder_output=whisper).args
    return nodes_wan.WanImageToVideo.execute(context(), context(), vae, width, height, frames, 1,
                                             start_image=portrait).args


def bench_graph(name, args, device, real, sizes, stage_rows, table):
    import torch
    import comfy.model_management as mm
    import comfy.ops
    import comfy.sd
    import nodes
    from comfy.audio_encoders.audio_encoders import load_audio_encoder_from_sd
    from comfy.audio_encoders.wav2vec2 import Wav2Vec2Model
    from comfy.ldm.wan.vae import WanVAE

    ops = comfy.ops.disable_weight_init
    build_dtype = torch.bfloat16 if real else torch.float32
    fps, trained, distill_steps, full_steps = GRAPHS[name]
    frames = args.frames or (trained if real else 5)
    t0 = time.perf_counter()
    sd = random_state(build_model(name, REAL if real else TINY, ops), device, build_dtype)
    options = {"dtype": torch.float8_e4m3fn} if args.dtype == "fp8" and real else {}
    model = comfy.sd.load_diffusion_model_state_dict(sd, model_options=options)
    del sd
    with torch.device("meta"):
        meta = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                      temperal_downsample=[False, True, True], dropout=0.0)
    vae = comfy.sd.VAE(sd=random_state(meta, device, torch.float32))
    encoder = None
    if name != "humo":
        meta = Wav2Vec2Model(embed_dim=1024, num_heads=16, num_layers=24, conv_norm=True, conv_bias=True,
                             do_normalize=True, do_stable_layer_norm=True, device="meta", operations=ops)
        encoder = load_audio_encoder_from_sd(random_state(meta, device, torch.float32))
    loaded = time.perf_counter() - t0
    mm.soft_empty_cache()
    for width, height in sizes:
        if real:
            torch.cuda.reset_peak_memory_stats()
        gen = torch.Generator().manual_seed(0)
        seconds = frames / fps
        audio = torch.randn(1, 1, int(seconds * 16000), generator=gen) * 0.1
        portrait = torch.rand(1, height, width, 3, generator=gen)
        context = lambda: [[torch.randn(1, 512, 4096, generator=gen) * 0.02, {}]]  # noqa: E731 umt5-xxl's shape

        def timed(label, func):
            start = time.perf_counter()
            out = func()
            if real:
                torch.cuda.synchronize()
            stage_rows.append((f"{name} {width}x{height}: {label}", time.perf_counter() - start, peak_gb(device)))
            return out, stage_rows[-1][1]

        features, t_audio = timed("audio encoder", lambda: encoder.encode_audio(audio, 16000)) if encoder else (None, 0.0)
        (positive, negative, latent), t_cond = timed("conditioning", lambda: conditioning(
            name, vae, width, height, frames, portrait, features, context, gen))
        (sampled,), t_sample = timed(f"sampling {args.measure_steps} step(s), cfg 1", lambda: nodes.common_ksampler(
            model, 0, args.measure_steps, 1.0, "uni_pc", "simple", positive, negative, latent))
        _, t_decode = timed("VAE decode", lambda: vae.decode(sampled["samples"]))
        per_pass = t_sample / args.measure_steps
        fixed = t_audio + t_cond + t_decode
        table.append((name, f"{width}x{height}", str(frames), f"{loaded:.0f}", f"{per_pass:.2f}",
                      f"{(fixed + distill_steps * per_pass) / seconds:.1f}",
                      f"{(fixed + 2 * full_steps * per_pass) / seconds:.1f}", f"{peak_gb(device):.1f}"))
    model = vae = encoder = None  # free the weights before the next graph
    mm.unload_all_models()
    mm.soft_empty_cache()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--comfyui-dir", type=Path, default=os.environ.get("COMFYUI_DIR"),
                   help="ComfyUI source tree (default $COMFYUI_DIR)")
    p.add_argument("--smoke", action="store_true", help="CPU smoke size: tiny widths, 64x64, 5 frames")
    p.add_argument("--device", default=None, help="cuda (default when usable) or cpu (implies --smoke)")
    p.add_argument("--graphs", default="s2v,humo,infinitetalk", help="comma-separated: s2v, humo, infinitetalk")
    p.add_argument("--sizes", default=None, metavar="WxH,...", help="default 832x480,1280x720 (CUDA), 64x64 (smoke)")
    p.add_argument("--frames", type=int, default=None, help="4n+1 frames (default: each graph's trained length)")
    p.add_argument("--measure-steps", type=int, default=1, help="sampler steps timed (one model pass each)")
    p.add_argument("--dtype", choices=["bf16", "fp8"], default="fp8",
                   help="diffusion weights: fp8_e4m3fn as the templates' files (default), or bf16")
    args = p.parse_args()
    if not args.comfyui_dir or not (Path(args.comfyui_dir) / "main.py").is_file():
        p.error("give --comfyui-dir (or set COMFYUI_DIR) to a ComfyUI source tree")
    sys.path.insert(0, str(Path(args.comfyui_dir).resolve()))
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    real = device.startswith("cuda") and not args.smoke
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.sizes or ("832x480,1280x720" if real else "64x64")).split(",")]
    import comfy.cli_args
    comfy.cli_args.args.cpu = not device.startswith("cuda")
    started, stage_rows = time.perf_counter(), []
    table = [("graph", "size", "frames", "load s", "s/pass", "distill s/s", "full s/s", "peak GB")]
    for name in args.graphs.split(","):
        print(f"{name}: {'real size' if real else 'smoke size'}, {args.dtype if real else 'fp32'}, random weights, "
              f"on {device} ...", flush=True)
        bench_graph(name.strip(), args, device, real, sizes, stage_rows, table)
    print()
    for label, seconds, gb in stage_rows:
        print(f"  {label}: {seconds:.2f} s (peak {gb:.2f} GB)")
    print("\ncinema: seconds of compute per second of video (s/s), distill = lightx2v LoRA steps at cfg 1, "
          "full = full steps at cfg > 1 (two passes a step); counted from the measured pass time")
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    print(f"\n{'peak: torch allocated' if real else 'smoke size on CPU; peak: process RSS'}; "
          f"wall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
