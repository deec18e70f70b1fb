"""Random-weight MuseTalk 1.5 files in the published layout, for tests and benchmarks.

    build(models_dir)              # tiny: a few MB, seconds on a CPU
    build(models_dir, real=True)   # the released architectures (UNet ~0.8 B parameters)

Writes, under `models_dir` (the folders models.yaml names):
    lipsync/musetalkV15/musetalk.json, unet.pth       UNet2DConditionModel config + state_dict
    lipsync/sd-vae-ft-mse/config.json, diffusion_pytorch_model.safetensors   AutoencoderKL
    lipsync/whisper-tiny/config.json, model.safetensors, preprocessor_config.json   Whisper
The classes are diffusers' and transformers' own at random init (seeded). The tiny UNet keeps
what the engine keys on (8 input channels, cross attention as wide as Whisper's d_model); the
tiny VAE keeps the factor-8 downsampling (a 256 crop gives 32x32 latents).

Run as a script: python tests/tiny_musetalk.py MODELS_DIR [--real]
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

UNET_DIR, VAE_DIR, WHISPER_DIR = "lipsync/musetalkV15", "lipsync/sd-vae-ft-mse", "lipsync/whisper-tiny"

# musetalk.json as published (MuseTalk's train_codes/musetalk.json, models/musetalkV15/musetalk.json)
REAL_UNET = dict(
    act_fn="silu", attention_head_dim=8, block_out_channels=[320, 640, 1280, 1280],
    center_input_sample=False, cross_attention_dim=384,
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"], downsample_padding=1,
    flip_sin_to_cos=True, freq_shift=0, in_channels=8, layers_per_block=2,
    mid_block_scale_factor=1, norm_eps=1e-05, norm_num_groups=32, out_channels=4,
    sample_size=64, up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
TINY_UNET = dict(  # attention at 16x16 only: CPU-cheap
    attention_head_dim=8, block_out_channels=[16, 32], cross_attention_dim=64,
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"], in_channels=8, layers_per_block=1,
    norm_num_groups=8, out_channels=4, sample_size=32,
    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"])
REAL_VAE = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4,
                norm_num_groups=32, sample_size=256)  # sd-vae-ft-mse's config.json
TINY_VAE = dict(block_out_channels=[8, 8, 16, 16], layers_per_block=1, latent_channels=4,
                norm_num_groups=8, sample_size=256)
REAL_WHISPER = dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                    decoder_layers=4, decoder_attention_heads=6, decoder_ffn_dim=1536,
                    vocab_size=51865, max_target_positions=448)  # openai/whisper-tiny
TINY_WHISPER = dict(d_model=64, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                    decoder_layers=1, decoder_attention_heads=2, decoder_ffn_dim=64,
                    vocab_size=64, max_target_positions=16)


def _save_to(state: dict, path) -> None:
    import torch
    torch.save(state, path)


def build(models_dir, real: bool = False, seed: int = 0, unet_dtype=None) -> Path:
    """Write the three models under `models_dir`; returns it. `unet_dtype` (e.g. torch.float16)
    halves a real-size unet.pth on disk; the published one is float32."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    root = Path(models_dir)
    torch.manual_seed(seed)
    unet_dir = root / UNET_DIR
    unet_dir.mkdir(parents=True, exist_ok=True)
    config = dict(REAL_UNET if real else TINY_UNET)
    unet = UNet2DConditionModel(**config)
    state = {k: v.to(unet_dtype) if unet_dtype else v for k, v in unet.state_dict().items()}
    del unet
    _publish(unet_dir / "unet.pth", functools.partial(_save_to, state))
    del state
    config = {"_class_name": "UNet2DConditionModel", **config}
    (unet_dir / "musetalk.json").write_text(json.dumps(config, indent=2))

    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, **(REAL_VAE if real else TINY_VAE))
    vae.save_pretrained(root / VAE_DIR, safe_serialization=True)

    whisper = WhisperModel(WhisperConfig(
        num_mel_bins=80, max_source_positions=1500, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, decoder_start_token_id=1, **(REAL_WHISPER if real else TINY_WHISPER)))
    whisper.save_pretrained(root / WHISPER_DIR)  # config.json, model.safetensors
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, hop_length=160, chunk_length=30,
                            n_fft=400).save_pretrained(root / WHISPER_DIR)
    return root


def _publish(path: Path, write) -> None:
    part = path.with_name(path.name + ".part")
    write(part)
    part.replace(path)


if __name__ == "__main__":
    print(build(sys.argv[1], real="--real" in sys.argv[2:]))
