#!/usr/bin/env python3
"""Identity LoRA training (`podium profile train`): steps per second and peak memory, one table.

SD1.5 and SDXL are built at their released architectures with RANDOM weights (nothing is
downloaded; a training step costs the same whatever the weights), saved as diffusers folders in
--workdir (kept for the next run: SD1.5 ~2 GB, SDXL ~7 GB in fp16), then trained through the
pack's own engine (face crops of a real photograph, engines/lora_train.py) for --steps steps.
`--size tiny` uses the tests' tiny models instead (seconds, for a CPU). CUDA: bf16 base, fp32
LoRA, gradient checkpointing, peak allocated by torch; CPU: fp32, peak RSS growth.
Target (issue 23): SD1.5, 500 steps in <= 10 min on one 16 GB GPU (>= 0.83 steps/s).

    .venv/bin/python scripts/bench/profile_train.py --size tiny              # CPU, seconds
    .venv/bin/python scripts/bench/profile_train.py --family sd15 sdxl --steps 20   # on a GPU
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "custom_nodes"))

WARMUP = 2  # steps left out of the rate (allocations, cuDNN autotuning)


def clip_l(torch, transformers):
    return transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768))


def clip_g(torch, transformers):
    return transformers.CLIPTextModelWithProjection(transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
        num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280))


def sd_vae(diffusers, scaling: float):
    return diffusers.AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                                   down_block_types=("DownEncoderBlock2D",) * 4,
                                   up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4,
                                   sample_size=512, scaling_factor=scaling)


def build_real(family: str, folder: Path) -> Path:
    """The released architecture at random init, in diffusers' folder layout (fp16 files)."""
    if (folder / "model_index.json").is_file():
        return folder
    import diffusers
    import torch
    import transformers
    from test_presenter_image import clip_tokenizer, hub_layout

    torch.manual_seed(0)
    tokenizer = clip_tokenizer(folder.with_name(folder.name + "-tok"))
    if family == "sd15":
        pipe = diffusers.StableDiffusionPipeline(
            unet=diffusers.UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8),
            vae=sd_vae(diffusers, 0.18215), text_encoder=clip_l(torch, transformers), tokenizer=tokenizer,
            scheduler=diffusers.PNDMScheduler(skip_prk_steps=True), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
        names = ("tokenizer",)
    else:
        unet = diffusers.UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
        pipe = diffusers.StableDiffusionXLPipeline(
            unet=unet, vae=sd_vae(diffusers, 0.13025), text_encoder=clip_l(torch, transformers),
            text_encoder_2=clip_g(torch, transformers), tokenizer=tokenizer, tokenizer_2=tokenizer,
            scheduler=diffusers.EulerDiscreteScheduler())
        names = ("tokenizer", "tokenizer_2")
    pipe.to(torch.float16).save_pretrained(folder)
    return hub_layout(folder, folder.with_name(folder.name + "-tok"), *names)


def build_tiny(family: str, folder: Path) -> Path:
    from test_presenter_image import build_sd15, build_sdxl

    return folder if (folder / "model_index.json").is_file() else {"sd15": build_sd15, "sdxl": build_sdxl}[family](folder)


def run(family: str, base: Path, crops, steps: int, size: int, rank: int, work: Path) -> tuple[float, int, str]:
    """(steps per second after the warm-up, peak bytes, device) of one training."""
    from podium import profiling
    from podium.engines.lora_train import TrainConfig, train_lora
    from podium.memory import get_manager

    times = []
    config = TrainConfig(steps=steps, rank=rank, size=size, checkpoint_every=max(steps, 1))
    with profiling.stage(f"lora_train {family}", into=[]) as report:
        train_lora(base, crops, work / f"lora-{family}", work / f"ckpt-{family}", config, lambda _l: None,
                   lambda _s, _l: times.append(time.perf_counter()))
    get_manager().evict()
    timed = times[WARMUP:] if len(times) > WARMUP + 1 else times
    rate = (len(timed) - 1) / (timed[-1] - timed[0]) if len(timed) > 1 else float("nan")
    return rate, report.peak_bytes, report.device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", nargs="+", default=["sd15", "sdxl"], choices=["sd15", "sdxl"])
    parser.add_argument("--size", choices=["real", "tiny"], default="real")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=0, help="training picture side (default 512/1024; tiny: 64)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "podium-bench-lora")
    args = parser.parse_args()

    from PIL import Image
    from skimage import data

    from podium import profiling
    from podium.engines.lora_images import face_crops

    args.workdir.mkdir(parents=True, exist_ok=True)
    photo = args.workdir / "face.png"
    Image.fromarray(data.astronaut()).save(photo)
    print(f"identity LoRA training, {args.size} size, rank {args.rank}, {args.steps} steps "
          f"({WARMUP} warm-up steps not timed)")
    print(f"{'model':8} {'picture':>8} {'device':>8} {'steps/s':>8} {'500 steps':>10} {'peak memory':>12}")
    for family in args.family:
        side = args.resolution or (64 if args.size == "tiny" else {"sd15": 512, "sdxl": 1024}[family])
        build = build_tiny if args.size == "tiny" else build_real
        base = build(family, args.workdir / f"{args.size}-{family}")
        crops = face_crops([photo] * 5, side)
        rate, peak, device = run(family, base, crops, args.steps, side, args.rank, args.workdir)
        print(f"{family:8} {side:>8} {device:>8} {rate:8.2f} {500 / rate / 60:9.1f}m "
              f"{profiling.fmt_bytes(peak):>12}")


if __name__ == "__main__":
    main()
