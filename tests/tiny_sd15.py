"""A tiny random-weight SD1.5 single-file checkpoint that ComfyUI's CheckpointLoaderSimple loads.

Run as a script with a ComfyUI source tree (its key maps name the original layout):
    python tests/tiny_sd15.py COMFYUI_DIR OUT.safetensors

The parts are diffusers' and transformers' own classes at random init (seeded), saved in the
original Stable Diffusion layout (model.diffusion_model.*, first_stage_model.*,
cond_stage_model.transformer.*). What ComfyUI keys on decides the sizes:
- the UNet is detected as SD1.5 only with model_channels 320 and a 768-wide cross attention
  (comfy/supported_models.py SD15.unet_config); depth is free, so it has one level and one
  res block (about 1/20 of the real UNet);
- the text encoder is built from ComfyUI's fixed CLIP-L config (sd1_clip_config.json) and the
  VAE from its fixed SD config, so both keep their real shapes (random weights, fp16).
"""
from __future__ import annotations

import sys
from pathlib import Path


def build(comfyui_dir: str, out: str, seed: int = 0) -> Path:
    sys.path.insert(0, comfyui_dir)
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    import comfy.diffusers_convert
    import comfy.utils

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(320,), down_block_types=("CrossAttnDownBlock2D",),
        up_block_types=("CrossAttnUpBlock2D",), cross_attention_dim=768, attention_head_dim=8)
    unet_config = {"num_res_blocks": [1], "channel_mult": [1], "transformer_depth": [1],
                   "transformer_depth_output": [1, 1], "transformer_depth_middle": 1}
    to_original = comfy.utils.unet_to_diffusers(unet_config)  # diffusers key -> original key
    state = {}
    for key, value in unet.state_dict().items():
        state["model.diffusion_model." + to_original[key]] = value.half()

    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                        block_out_channels=(128, 256, 512, 512),
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4)
    for key, value in comfy.diffusers_convert.convert_vae_state_dict(vae.state_dict()).items():
        state["first_stage_model." + key] = value.half()

    clip = CLIPTextModel(CLIPTextConfig(  # CLIP ViT-L/14's text tower
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=768))
    for key, value in clip.state_dict().items():
        if not key.endswith("position_ids"):
            state["cond_stage_model.transformer." + key] = value.half()

    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)
    return path


if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2]))
