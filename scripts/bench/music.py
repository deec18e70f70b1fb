#!/usr/bin/env python3
"""ACE-Step 1.5 music at its real size: seconds of compute per second of audio, peak memory.

The pipeline is diffusers' AceStepPipeline built here at the released architecture with RANDOM
weights (nothing is downloaded; a forward pass costs the same whatever the weights' values),
handed to the pack's memory manager (which places it), and run through the pack's own engine
(podium.engines.music.generate: 48 kHz stereo, the exact length asked, noise from the CPU).
One untimed 2 s warm-up, then each length once; each row is timed and its peak memory
measured by profiling.stage (CUDA: peak allocated by torch; CPU: peak RSS growth).

Sizes (transformer: hidden / layers / heads; condition encoder 2048 wide, 8 lyric + 4 timbre
layers; text encoder Qwen3-Embedding-0.6B, 28 layers, 1024 wide):
  xl     the released XL turbo (2560 / 32 / 32, 4B+ parameters), bf16 on CUDA: what models.yaml pulls
  2b     the 2B turbo (2048 / 24 / 16)
  smoke  XL widths with 2 transformer, 2 text-encoder and 1+1 condition layers: a CPU check that
         the real shapes run, NOT a measure of the real model's speed
The VAE is AutoencoderOobleck at 48 kHz, strides [2, 4, 4, 6, 10] (1920 samples per latent, 25
latents/s), widths 128 x 1/2/4/8/16: 168.7 M parameters, which in bf16 is the released VAE file's
size (337.4 MB) to within its header. The tokenizer is a byte-level stand-in (the real one's
151k-token vocabulary is kept in the text encoder's embedding).

    .venv/bin/python scripts/bench/music.py                   # CUDA: xl, 10/30/60/120 s, 8 steps; CPU: smoke, 2 s
    .venv/bin/python scripts/bench/music.py --model 2b --seconds 30 120
    .venv/bin/python scripts/bench/music.py --device cpu --model smoke --seconds 2 --steps 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub is imported
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "custom_nodes"))

import torch  # noqa: E402
from diffusers.utils import logging as diffusers_logging  # noqa: E402

import tiny_music  # noqa: E402
from podium import memory, profiling  # noqa: E402
from podium.engines.music import generate  # noqa: E402

PROMPT = "calm ambient piano, soft pads, slow tempo, instrumental"
TEXT = dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
            num_key_value_heads=8, head_dim=128, vocab_size=151669, max_position_embeddings=32768,
            rope_theta=1000000.0)
CONDITION = dict(hidden_size=2048, intermediate_size=6144, text_hidden_dim=1024, timbre_hidden_dim=64,
                 num_lyric_encoder_hidden_layers=8, num_timbre_encoder_hidden_layers=4,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128)
XL = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=32, num_attention_heads=32,
          num_key_value_heads=8, head_dim=128, encoder_hidden_size=2048)
MODELS = {
    "xl": (XL, {}, {}),
    "2b": (dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=24, num_attention_heads=16,
                num_key_value_heads=8, head_dim=128), {}, {}),
    "smoke": ({**XL, "num_hidden_layers": 2}, {"num_hidden_layers": 2},
              {"num_lyric_encoder_hidden_layers": 1, "num_timbre_encoder_hidden_layers": 1}),
}
VAE = dict(encoder_hidden_size=128, downsampling_ratios=[2, 4, 4, 6, 10], channel_multiples=[1, 2, 4, 8, 16],
           decoder_channels=128, decoder_input_channels=64, audio_channels=2, sampling_rate=48000)


def build(model: str, device: str, dtype: torch.dtype):
    """The pipeline at `model`'s size, random weights (seeded), made on `device` in `dtype`."""
    from diffusers import AceStepPipeline, AutoencoderOobleck, FlowMatchEulerDiscreteScheduler
    from diffusers.models.transformers.ace_step_transformer import AceStepTransformer1DModel
    from diffusers.pipelines.ace_step import AceStepConditionEncoder
    from transformers import Qwen3Config, Qwen3Model

    dit, text, condition = MODELS[model]
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # made in bf16 on the GPU: XL in fp32 would not fit a 24 GB card
    try:
        with torch.device(device):
            parts = dict(
                transformer=AceStepTransformer1DModel(in_channels=192, audio_acoustic_hidden_dim=64, patch_size=2,
                                                      is_turbo=True, model_version="turbo", **dit),
                condition_encoder=AceStepConditionEncoder(**{**CONDITION, **condition}),
                text_encoder=Qwen3Model(Qwen3Config(**{**TEXT, **text})),
                vae=AutoencoderOobleck(**VAE))
    finally:
        torch.set_default_dtype(default)
    parts = {name: module.to(dtype).eval() for name, module in parts.items()}
    pipe = AceStepPipeline(tokenizer=tiny_music.tokenizer(),
                           scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1, shift=1.0), **parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if cuda else "cpu", help="cuda, cuda:N or cpu")
    p.add_argument("--model", choices=list(MODELS), help="size (default xl on CUDA, smoke on CPU)")
    p.add_argument("--seconds", type=float, nargs="+", help="audio lengths (default 10 30 60 120 on CUDA, 2 on CPU)")
    p.add_argument("--steps", type=int, help="denoising steps (default 8, the turbo's; 2 on CPU)")
    args = p.parse_args()
    diffusers_logging.set_verbosity_error()  # dtype-cast notes about random-weight modules
    on_cuda = args.device.startswith("cuda")
    model = args.model or ("xl" if on_cuda else "smoke")
    seconds = args.seconds or ([10.0, 30.0, 60.0, 120.0] if on_cuda else [2.0])
    steps = args.steps or (8 if on_cuda else 2)
    dtype = torch.bfloat16 if on_cuda else torch.float32
    if not on_cuda:
        print("CPU only: no GPU here. The smoke size checks that the real shapes run; its figures are not "
              "the real model's speed.", flush=True)

    memory._manager = manager = memory.ModelManager(device=args.device)  # the process-wide manager, on --device
    started = time.perf_counter()
    pipe = manager.load(f"bench:ace-step-{model}", lambda: build(model, args.device, dtype), kind="torch",
                        stage="music")
    weights = manager.loaded()[-1][1]
    print(f"built {model} ({weights / 2**30:.2f} GiB of {str(dtype)[6:]} weights, random) on {args.device} "
          f"in {time.perf_counter() - started:.0f} s; warming up ...", flush=True)
    generate(pipe, PROMPT, 2.0, seed=0, steps=1)

    rows = [("model", "device", "audio s", "steps", "compute s", "s per audio s", "peak")]
    for length in seconds:
        with profiling.stage("music") as report:
            audio, rate = generate(pipe, PROMPT, length, seed=0, steps=steps)
        if on_cuda:
            torch.cuda.synchronize()
        assert audio.shape == (2, round(length * rate)), audio.shape
        rows.append((model, report.device, f"{length:g}", str(steps), f"{report.wall_s:.2f}",
                     f"{report.wall_s / length:.3f}", profiling.fmt_bytes(report.peak_bytes)))
        print(f"- {length:g} s: {report.wall_s:.2f} s", flush=True)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(f"{cell:>{w}}" for cell, w in zip(row, widths)))


if __name__ == "__main__":
    main()
