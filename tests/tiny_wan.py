"""Tiny random-weight models for the cinema graphs, in the files ComfyUI's own loaders read.

    install_tiny_cinema_models(comfyui_models_dir, kind, comfyui_dir=$COMFYUI_DIR) -> {role: file}
    python tests/tiny_wan.py COMFYUI_DIR MODELS_DIR KIND      (KIND: s2v, humo, ti2v or all)

Each model is ComfyUI's own module (comfy.ldm.wan.model, comfy.ldm.wan.vae,
comfy.audio_encoders.wav2vec2) built on the meta device, so the keys and shapes are exactly
those ComfyUI's loaders detect, then filled with seeded random values (fp16) and saved as
safetensors (temp name, then renamed) under MODELS_DIR/<ComfyUI folder>/. What is tiny and
what is not:
- diffusion_models/tiny_wan22_s2v.safetensors, tiny_humo.safetensors: Wan2.2-S2V and HuMo
  (1.7B layout: 16 input channels) at dim 128 (one head; model_detection takes heads = dim/128),
  ffn 256, one block. Parts whose widths ComfyUI fixes keep them: the S2V audio encoder input
  (1024, wav2vec2-large), its 12 audio injectors, HuMo's audio projection (8x5x1280 -> 1536)
  and the 4096-wide text embedding. About 3 M (S2V) and 40 M (HuMo) parameters.
- vae/tiny_wan21_vae.safetensors: the Wan 2.1 VAE at its real size (ComfyUI fixes its config,
  dim 96; 127 M parameters), random weights.
- audio_encoders/tiny_wav2vec2_large.safetensors (s2v): wav2vec2-large at its real size (ComfyUI
  picks the config from the width; 1024 is the one S2V takes; 315 M parameters), random weights.
Not built here, because ComfyUI fixes a size a 2-core CPU test cannot run: the umt5-xxl text
encoder (CLIPLoader type wan, fixed 5.7 B config) and whisper-large-v3 (HuMo's audio encoder,
fixed 635 M config that always encodes 30 s). tests/comfy_stand_ins gives the graphs
CONDITIONING and AUDIO_ENCODER_OUTPUT of their exact shapes instead (see its docstring).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DIFFUSION = {"s2v": "tiny_wan22_s2v.safetensors", "humo": "tiny_humo.safetensors"}
VAE = "tiny_wan21_vae.safetensors"
# TI2V 5B (kind ti2v): what ComfyUI detects as WAN22_T2V (a Wan 2.1 layout with 48 latent
# channels in and out) and the Wan 2.2 VAE (sd.py fixes its config: dim 160, z_dim 48; 705 M
# parameters at its real size, random weights). Saved under the shipped names (the test's
# server lists them as a real one would; the orchestrator picks its graph by them).
TI2V = {"diffusion_models": "wan2.2_ti2v_5B_fp16.safetensors", "vae": "wan2.2_vae.safetensors"}
WAV2VEC2 = "tiny_wav2vec2_large.safetensors"
TINY = {"dim": 128, "ffn_dim": 256, "num_heads": 1, "num_layers": 1}


def files_for(kind: str) -> dict[str, str]:
    """{role: file name} a kind needs; roles are the ComfyUI model folders."""
    if kind == "ti2v":
        return dict(TI2V)
    if kind == "all":
        return {f"diffusion_models/{k}": v for k, v in DIFFUSION.items()} | {
            "vae": VAE, "audio_encoders": WAV2VEC2}
    if kind not in DIFFUSION:
        raise ValueError(f"kind must be s2v, humo, ti2v or all, got {kind!r}")
    out = {"diffusion_models": DIFFUSION[kind], "vae": VAE}
    if kind == "s2v":
        out["audio_encoders"] = WAV2VEC2
    return out


def install_tiny_cinema_models(comfyui_models_dir: str | Path, kind: str,
                               comfyui_dir: str | Path | None = None) -> dict[str, str]:
    """Build the tiny models `kind` needs into COMFYUI_MODELS_DIR/<folder>/ (skipping files
    already there); returns {folder: file name}. Runs in a child Python (ComfyUI's modules are
    imported there, not in the caller)."""
    comfyui_dir = comfyui_dir or os.environ["COMFYUI_DIR"]
    files = files_for(kind)
    subprocess.run([sys.executable, __file__, str(comfyui_dir), str(comfyui_models_dir), kind],
                   check=True, capture_output=True, timeout=900)
    return files


def _random_state(module, seed: int):
    """The module's state dict (on the meta device) filled with seeded values, fp16: norms and
    gains 1, biases 0, weights N(0, 1/fan_in), embeddings and modulations N(0, 0.02)."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, meta in module.state_dict().items():
        shape, leaf = tuple(meta.shape), name.rsplit(".", 1)[-1]
        if leaf == "bias":
            value = torch.zeros(shape)
        elif "norm" in name or leaf in ("gamma", "weights") or name.endswith("weight_g"):
            value = torch.ones(shape)
        elif len(shape) >= 2 and "modulation" not in name:
            fan_in = max(1, meta.numel() // shape[0])
            value = torch.randn(shape, generator=gen) / fan_in ** 0.5
        else:
            value = torch.randn(shape, generator=gen) * 0.02
        state[name] = value.to(torch.float16).contiguous()
    return state


def _save(state: dict, path: Path) -> None:
    from safetensors.torch import save_file
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    save_file(state, str(tmp))
    tmp.replace(path)


def build(comfyui_dir: str, models_dir: str, kind: str, seed: int = 0) -> dict[str, str]:
    sys.path.insert(0, comfyui_dir)
    import comfy.cli_args
    comfy.cli_args.args.cpu = True  # no GPU probing while the modules are imported
    import torch

    import comfy.ops
    from comfy.audio_encoders.wav2vec2 import Wav2Vec2Model
    from comfy.ldm.wan.model import HumoWanModel, WanModel, WanModel_S2V
    from comfy.ldm.wan.vae import WanVAE
    from comfy.ldm.wan.vae2_2 import WanVAE as Wan22VAE

    ops = comfy.ops.disable_weight_init
    root = Path(models_dir)
    files = files_for(kind)
    for folder, name in files.items():
        path = root / folder.split("/")[0] / name
        if path.exists():
            continue
        if kind == "ti2v" and folder == "diffusion_models":  # detected as Wan 2.2 TI2V: 48 channels
            module = WanModel(model_type="t2v", in_dim=48, out_dim=48, **TINY, device="meta", operations=ops)
        elif kind == "ti2v":  # sd.py's Wan 2.2 VAE config
            with torch.device("meta"):
                module = Wan22VAE(dim=160, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                  temperal_downsample=[False, True, True], dropout=0.0)
        elif folder.startswith("diffusion_models"):
            cls = WanModel_S2V if name == DIFFUSION["s2v"] else HumoWanModel
            module = cls(**TINY, device="meta", operations=ops)
        elif folder == "vae":  # sd.py's Wan 2.1 config
            with torch.device("meta"):
                module = WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)
        else:  # audio_encoders.py's wav2vec2-large config (embed_dim 1024)
            module = Wav2Vec2Model(embed_dim=1024, num_heads=16, num_layers=24, conv_norm=True,
                                   conv_bias=True, do_normalize=True, do_stable_layer_norm=True,
                                   device="meta", operations=ops)
        _save(_random_state(module, seed), path)
    return files


if __name__ == "__main__":
    print(build(sys.argv[1], sys.argv[2], sys.argv[3]))
