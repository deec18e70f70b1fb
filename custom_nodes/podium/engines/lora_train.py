"""Identity LoRA training, DreamBooth style, with diffusers + peft: a low-rank adapter on the
UNet's attention learns one person from 5-30 face crops, all captioned "a photo of <token> person".

In-process rather than ComfyUI core's TrainLoraNode: that node (experimental in 0.3.64) runs a
whole training inside one node call, with no optimizer state or step to resume from, and needs a
running ComfyUI; this runs wherever the pack is installed, checkpoints, and resumes after Ctrl-C.

The base pipeline is loaded and placed by the memory manager (the one memory authority) and
evicted after training; on a GPU the frozen weights are bf16 (fp32 when the card has no bf16)
and the adapter trains in fp32. Each step's picture, noise and timestep are drawn from
(seed, step), so a resumed run makes the same steps an unbroken one would have.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import PodiumError
from ..memory import get_manager
from ..progress import Progress
from .presenter_image import PIPELINES, detect_family

CHECKPOINT = "checkpoint.pt"
LORA_FILE = "pytorch_lora_weights.safetensors"  # the name diffusers' trainers write
INFO_FILE = "lora.json"
SIZES = {"sd15": 512, "sdxl": 1024}
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


@dataclass
class TrainConfig:
    steps: int = 500
    rank: int = 16
    learning_rate: float = 1e-4
    size: int = 0  # 0: the family's own (512 / 1024)
    token: str = "sks"
    seed: int = 0
    checkpoint_every: int = 50

    def caption(self) -> str:
        return f"a photo of {self.token} person"


def fingerprint(base: Path, images: Sequence[np.ndarray], config: TrainConfig) -> str:
    """What a checkpoint was made from; a checkpoint of other images or settings is not resumed."""
    digest = hashlib.sha256(str(Path(base).resolve()).encode())
    settings = {k: v for k, v in asdict(config).items() if k not in ("steps", "checkpoint_every")}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for image in images:
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def load_base(folder: Path):
    """(pipeline, family, manager key): the base placed by the memory manager, for training."""
    import torch
    import diffusers

    family = detect_family(folder)
    if family not in SIZES:
        raise PodiumError(f"identity LoRAs train on SD1.5 or SDXL, not {family}: choose --base sd15 or sdxl")
    manager = get_manager()
    cuda = manager.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    extra = {"safety_checker": None, "feature_extractor": None,
             "requires_safety_checker": False} if family == "sd15" else {}

    from diffusers.utils import deprecation_utils
    # newer diffusers name it `dtype` and warn about `torch_dtype`; older ones know only that
    extra["dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"] = dtype

    def loader():
        try:
            pipe = getattr(diffusers, PIPELINES[family]).from_pretrained(folder, local_files_only=True, **extra)
        except (OSError, ValueError) as exc:
            raise PodiumError(f"cannot load the base model in {folder}: {exc}. Pull it again with "
                              "`podium models pull <id>`") from None
        for part in (pipe.unet, pipe.vae, pipe.text_encoder, getattr(pipe, "text_encoder_2", None)):
            if part is not None:
                part.requires_grad_(False)
        return pipe

    key = f"lora-train:{Path(folder).resolve()}:{str(dtype)[6:]}"
    work = (6 if family == "sdxl" else 3) * 1024**3  # activations, gradients, Adam's moments
    return manager.load(key, loader, stage="lora_train", work_bytes=work), family, key


def encode_caption(pipe, family: str, caption: str, size: int, device):
    """(text embeddings, extra UNet inputs) for the one caption every picture shares."""
    import torch

    with torch.no_grad():
        if family == "sd15":
            return pipe.encode_prompt(caption, device, 1, False)[0], {}
        embeds, _, pooled, _ = pipe.encode_prompt(prompt=caption, device=device, num_images_per_prompt=1,
                                                  do_classifier_free_guidance=False)
    time_ids = torch.tensor([[size, size, 0, 0, size, size]], device=device, dtype=embeds.dtype)
    return embeds, {"text_embeds": pooled, "time_ids": time_ids}


def encode_images(pipe, images: Sequence[np.ndarray], device):
    """(mean, std) of each picture's latent distribution, encoded once: steps only sample them."""
    import torch

    vae, stats = pipe.vae, []
    with torch.no_grad():
        for image in images:
            pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0)
            pixels = pixels.permute(2, 0, 1)[None].to(device, vae.dtype)
            dist = vae.encode(pixels).latent_dist
            stats.append((dist.mean.float(), dist.std.float()))
    return stats


def add_adapter(unet, rank: int, seed: int) -> list:
    """The LoRA on the UNet's attention projections, its random half drawn from `seed` (without
    touching the global generator); its parameters, in fp32, are what trains."""
    import torch
    from peft import LoraConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                    target_modules=TARGETS))
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()
    return params


def save_checkpoint(path: Path, unet, optimizer, step: int, mark: str) -> None:
    """LoRA weights, optimizer state and step, written under a temporary name then renamed."""
    import torch

    lora = {n: p.detach().cpu() for n, p in unet.named_parameters() if p.requires_grad}
    tmp = path.with_name(path.name + ".part")
    torch.save({"step": step, "lora": lora, "optimizer": optimizer.state_dict(), "fingerprint": mark}, tmp)
    os.replace(tmp, path)


def resume(path: Path, unet, optimizer, mark: str, say: Callable[[str], None]) -> int:
    """The step a matching checkpoint reached (its weights and optimizer restored), else 0."""
    import torch

    if not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        say(f"the checkpoint {path} is unreadable ({exc}): starting over")
        return 0
    if state.get("fingerprint") != mark:
        say("the checkpoint was made from other images or settings: starting over")
        return 0
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for name, value in state["lora"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    say(f"resuming from step {state['step']} ({path})")
    return int(state["step"])


def save_lora(pipe, unet, out: Path, info: dict) -> Path:
    """The LoRA as diffusers writes it (load_lora_weights reads it back), plus lora.json;
    the folder appears whole or not at all."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    type(pipe).save_lora_weights(tmp, unet_lora_layers=layers, safe_serialization=True)
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out / LORA_FILE


def train_step(pipe, unet, stats, text, extra, step: int, seed: int):
    """The denoising loss of one picture at one random timestep (drawn from (seed, step))."""
    import torch
    import torch.nn.functional as F

    scheduler, device = pipe.scheduler, unet.device
    gen = torch.Generator("cpu").manual_seed(seed * 1_000_003 + step)
    mean, std = stats[int(torch.randint(len(stats), (1,), generator=gen))]
    latents = (mean + std * torch.randn(mean.shape, generator=gen).to(device)) * pipe.vae.config.scaling_factor
    noise = torch.randn(latents.shape, generator=gen).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=gen).to(device)
    noisy = scheduler.add_noise(latents, noise, t).to(unet.dtype)
    with torch.autocast(device.type, dtype=unet.dtype, enabled=unet.dtype != torch.float32):
        pred = unet(noisy, t, encoder_hidden_states=text, added_cond_kwargs=extra or None).sample
    target = scheduler.get_velocity(latents, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise
    return F.mse_loss(pred.float(), target.float())


def train_lora(base: Path, images: Sequence[np.ndarray], out: Path, work: Path,
               config: Optional[TrainConfig] = None, say: Callable[[str], None] = print,
               on_step: Optional[Callable[[int, float], None]] = None) -> Path:
    """Train (or resume) an identity LoRA on `images` (square RGB uint8 face crops) over the
    diffusers model in `base`; checkpoints go to `work`, the LoRA folder to `out`. Returns the
    LoRA file. Ctrl-C saves a checkpoint first; the same call again resumes from it."""
    import torch
    from diffusers import DDPMScheduler

    config = config or TrainConfig()
    if config.steps < 1:
        raise PodiumError(f"--steps must be at least 1, not {config.steps}")
    pipe, family, key = load_base(Path(base))
    size = config.size or SIZES[family]
    if any(image.shape[:2] != (size, size) for image in images):
        raise PodiumError(f"training pictures must be {size}x{size} (lora_images.face_crops makes them)")
    pipe.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)  # the training noise schedule
    work.mkdir(parents=True, exist_ok=True)
    checkpoint, mark = work / CHECKPOINT, fingerprint(base, images, config)
    try:
        unet, device = pipe.unet, pipe.unet.device
        params = add_adapter(unet, config.rank, config.seed)
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=1e-2)
        start = resume(checkpoint, unet, optimizer, mark, say)
        text, extra = encode_caption(pipe, family, config.caption(), size, device)
        stats = encode_images(pipe, images, device)
        if device.type == "cuda":
            unet.enable_gradient_checkpointing()
        unet.train()
        progress, began, done, saved = Progress(config.steps), time.perf_counter(), start, start
        progress.update(start)
        try:
            for step in range(start + 1, config.steps + 1):
                loss = train_step(pipe, unet, stats, text, extra, step, config.seed)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                done = step
                progress.update()
                if on_step:
                    on_step(step, loss.item())
                if step % config.checkpoint_every == 0 or step == config.steps:
                    save_checkpoint(checkpoint, unet, optimizer, step, mark)
                    saved = step
                    rate = (step - start) / (time.perf_counter() - began)
                    say(f"step {step}/{config.steps}  loss {loss.item():.4f}  {rate:.2f} steps/s")
        except KeyboardInterrupt:
            if done > saved:  # the last whole step (a step cut short is made again)
                save_checkpoint(checkpoint, unet, optimizer, done, mark)
            say(f"interrupted at step {done}: run the same command again to resume")
            raise
        unet.eval()
        info = {"token": config.token, "caption": config.caption(), "family": family, "steps": config.steps,
                "rank": config.rank, "size": size, "images": len(images)}
        path = save_lora(pipe, unet, Path(out), info)
        checkpoint.unlink(missing_ok=True)
        return path
    finally:
        get_manager().evict(key)  # the adapter stays on this copy: nobody else may draw with it
