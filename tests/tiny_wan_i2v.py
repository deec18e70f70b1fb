"""A tiny random-weight Wan 2.2 TI2V pipeline folder, laid out as Wan-AI/Wan2.2-TI2V-5B-Diffusers
(model_index.json names WanPipeline with expand_timesteps, umT5 text encoder, the Wan 2.2 VAE
with its 2x patch and 16x spatial factor, UniPC with flow sigmas), loadable with
`from_pretrained` offline. Same classes and topology as the real model, far fewer channels.

    python tests/tiny_wan_i2v.py OUT_FOLDER          # or build(folder) from a test
    build(folder, real_size=True)                # the published sizes, random weights (benchmarks)
"""
from __future__ import annotations

import sys
from pathlib import Path

REAL_TRANSFORMER = dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                        out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30,
                        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
TINY_TRANSFORMER = dict(REAL_TRANSFORMER, num_attention_heads=2, attention_head_dim=12, in_channels=8,
                        out_channels=8, text_dim=16, freq_dim=16, ffn_dim=32, num_layers=1, rope_max_seq_len=64)
REAL_VAE = dict(base_dim=160, decoder_base_dim=256, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
                patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4)
TINY_VAE = dict(REAL_VAE, base_dim=8, decoder_base_dim=8, z_dim=8, num_res_blocks=1)
REAL_T5 = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
               feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
TINY_T5 = dict(REAL_T5, vocab_size=64, d_model=16, d_kv=8, d_ff=24, num_layers=1, num_heads=2)
WORDS = ["▁the", "▁person", "▁camera", "▁calm", "▁blinking", "▁mouth", "▁closed", "▁talking",
         *"▁abcdefghijklmnopqrstuvwxyz,"]


def build(folder: str | Path, real_size: bool = False, seed: int = 0, dtype=None) -> Path:
    """The pipeline folder; `dtype` (e.g. torch.bfloat16) halves a real-size one on disk."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import T5Tokenizer, UMT5Config, UMT5EncoderModel

    folder = Path(folder)
    vae_config = REAL_VAE if real_size else TINY_VAE
    torch.manual_seed(seed)
    vae = AutoencoderKLWan(**vae_config, latents_mean=[0.0] * vae_config["z_dim"],
                           latents_std=[1.0] * vae_config["z_dim"]).eval()
    transformer = WanTransformer3DModel(**(REAL_TRANSFORMER if real_size else TINY_TRANSFORMER)).eval()
    t5 = UMT5EncoderModel(UMT5Config(**(REAL_T5 if real_size else TINY_T5))).eval()
    tokenizer = T5Tokenizer(vocab=[("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(w, -1.0) for w in WORDS],
                            extra_ids=0)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=5.0, num_train_timesteps=1000)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=t5, vae=vae, scheduler=scheduler,
                       transformer=transformer, expand_timesteps=True)
    if dtype is not None:
        pipe.to(dtype)
    pipe.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(build(sys.argv[1]))
