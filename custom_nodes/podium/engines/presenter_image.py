"""Presenter image: diffusers text-to-image (SD1.5, SDXL, FLUX.1) from a local folder.

`load_pipeline` reads a diffusers-format folder (model_index.json, one sub-folder per
component) with local files only and hands it to the memory manager, which places it and
keeps it cached; `draw` makes one RGB image, the same for the same seed on any device (the
noise is drawn on the CPU). An identity LoRA can be put on the cached pipeline and taken off.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import ModelMissingError, PodiumError
from ..memory import get_manager
from ..models import diffusers_class
from ..progress import Progress

GiB = 1024**3
PIPELINES = {"sd15": "StableDiffusionPipeline", "sdxl": "StableDiffusionXLPipeline", "flux": "FluxPipeline"}
FAMILIES = ("auto", *PIPELINES)
# steps, guidance, size, working memory beyond the weights (activations, VAE decode)
DEFAULTS = {"sd15": (25, 7.5, 512, 1.5 * GiB), "sdxl": (30, 6.0, 1024, 3 * GiB),
            "flux": (4, 0.0, 1024, 4 * GiB), "flux-dev": (28, 3.5, 1024, 4 * GiB)}
LORA_ADAPTER = "podium_identity"
PRESENTER_NEGATIVE = ("blurry, lowres, deformed face, asymmetric eyes, extra fingers, hands on face, "
                      "profile view, looking away, cropped head, text, watermark, logo")


def presenter_prompt(stage_description: str = "", identity: str = "") -> str:
    """A prompt for a lip-syncable presenter: frontal, head and shoulders, mouth closed, lit face;
    the identity (e.g. a LoRA's trigger words) first and the scene last, as CLIP keeps 77 tokens."""
    parts = [identity.strip(), "photo of a presenter, head and shoulders, facing the camera, "
             "looking into the lens, friendly neutral expression, mouth closed, evenly lit face, sharp focus"]
    stage = " ".join(stage_description.split())
    if stage:
        parts.append(f"background: {stage}")
    return ", ".join(p for p in parts if p)


def detect_family(folder: str | Path) -> str:
    """sd15 / sdxl / flux from model_index.json's _class_name."""
    name = diffusers_class(folder, f"no diffusers model in {folder}: model_index.json not found. Download one "
                            "with `podium models pull <id>` (see `podium models list`) or give a "
                            "folder in diffusers format")
    for family, class_name in PIPELINES.items():
        if name == class_name:
            return family
    raise PodiumError(f"{folder} holds a {name or 'unknown'} pipeline; supported: {', '.join(PIPELINES.values())}")


def family_of(pipe) -> str:
    """The DEFAULTS key of a loaded pipeline (FLUX.1-dev, guidance-distilled, has its own)."""
    family = {v: k for k, v in PIPELINES.items()}.get(type(pipe).__name__, "sd15")
    if family == "flux" and pipe.transformer.config.get("guidance_embeds"):
        return "flux-dev"
    return family


def load_pipeline(folder: str | Path, family: str = "auto"):
    """The pipeline in `folder`, cached and placed by the memory manager: fp16 on CUDA (bf16 for
    FLUX, which overflows in fp16), fp32 on the CPU. fp16 variant files are used when present."""
    import torch

    folder = Path(folder).expanduser()
    found = detect_family(folder)
    if family not in FAMILIES:
        raise PodiumError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    family = found if family == "auto" else family
    manager = get_manager()
    cuda = manager.device.startswith("cuda")
    dtype = (torch.bfloat16 if family == "flux" else torch.float16) if cuda else torch.float32
    variant = "fp16" if any(folder.glob("*/*.fp16.safetensors")) else None
    weights = [p for p in folder.glob("*/*") if p.suffix in (".safetensors", ".bin")
               and (".fp16." in p.name) == bool(variant)]
    size = sum(p.stat().st_size for p in weights) * (2 if variant and not cuda else 1)

    def loader():
        import diffusers
        from diffusers.utils import deprecation_utils
        extra = {"safety_checker": None, "feature_extractor": None,
                 "requires_safety_checker": False} if family == "sd15" else {}
        # newer diffusers name it `dtype` and warn about `torch_dtype`; older ones know only that
        extra["dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"] = dtype
        try:
            pipe = getattr(diffusers, PIPELINES[family]).from_pretrained(
                folder, variant=variant, local_files_only=True, **extra)
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the diffusers model in {folder} (incomplete or damaged?): "
                                    f"{exc}. Pull it again with `podium models pull <id>`") from None
        pipe.set_progress_bar_config(disable=True)
        pipe.vae.enable_tiling()  # only beyond the VAE's native size: big images fit in 8 GB
        pipe._podium_lora = None
        return pipe

    return manager.load(f"diffusers:{folder.resolve()}:{str(dtype)[6:]}", loader, kind="torch",
                        stage="presenter_image", size_bytes=size, work_bytes=int(DEFAULTS[family][3]))


def set_lora(pipe, path: Optional[str | Path] = None, scale: float = 1.0) -> None:
    """Put the LoRA at `path` (a .safetensors file or a folder holding one) on the pipeline at
    `scale`; another LoRA is unloaded first; None or "" takes any LoRA off."""
    wanted = str(Path(path).expanduser().resolve()) if path else None
    current = getattr(pipe, "_podium_lora", None)
    if current and current[0] != wanted:
        pipe.unload_lora_weights()
        pipe._podium_lora = current = None
    if wanted is None:
        return
    if current is None:
        file = Path(wanted)
        if file.is_dir():
            files = sorted(file.glob("*.safetensors"), key=lambda p: p.name != "pytorch_lora_weights.safetensors")
            if not files:
                raise PodiumError(f"no .safetensors LoRA file in {file}")
            file = files[0]
        if not file.is_file():
            raise PodiumError(f"LoRA not found: {wanted}")
        try:
            pipe.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=LORA_ADAPTER,
                                   local_files_only=True)
        except (ValueError, KeyError, RuntimeError, OSError) as exc:
            pipe.unload_lora_weights()
            raise PodiumError(f"cannot use {file} as a LoRA for this {family_of(pipe)} model: {exc}") from None
    pipe.set_adapters([LORA_ADAPTER], adapter_weights=[float(scale)])
    pipe._podium_lora = (wanted, float(scale))


def native_size(family: str, aspect: float = 1.0, multiple: int = 64) -> tuple[int, int]:
    """(width, height) with the family's trained pixel count (512² SD1.5, 1024² SDXL/FLUX) in the
    shape `aspect` (width / height), sides multiples of 64 (SDXL's training buckets: 1344x768 for
    16:9)."""
    side = DEFAULTS[family][2]
    width = side * (aspect ** 0.5)
    fit = lambda v: max(multiple, int(round(v / multiple)) * multiple)
    return fit(width), fit(side * side / width)


def draw(pipe, prompt: str, negative_prompt: str = "", width: int = 0, height: int = 0,
         steps: int = 0, guidance: Optional[float] = None, seed: int = 0) -> np.ndarray:
    """One image as RGB uint8 (height, width, 3); 0 / None take the model family's default.
    FLUX ignores the negative prompt (it has no classifier-free guidance)."""
    import torch

    family = family_of(pipe)
    d_steps, d_guidance, d_size, _ = DEFAULTS[family]
    width, height, steps = int(width or d_size), int(height or d_size), int(steps or d_steps)
    guidance = d_guidance if guidance is None or guidance < 0 else float(guidance)
    multiple = 16 if family.startswith("flux") else 8
    if width % multiple or height % multiple or min(width, height) < multiple:
        raise PodiumError(f"width and height must be multiples of {multiple} for {family}, got {width}x{height}")
    progress = None

    def on_step(p, _step, _timestep, tensors):
        nonlocal progress  # made at the first step: PNDM runs one step more than asked
        progress = progress or Progress(getattr(p, "num_timesteps", 0) or steps)
        progress.update()
        return tensors

    kwargs = dict(prompt=prompt, width=width, height=height, num_inference_steps=steps,
                  guidance_scale=guidance, output_type="np", callback_on_step_end=on_step,
                  generator=torch.Generator("cpu").manual_seed(int(seed)))  # same noise on any device
    if family.startswith("flux"):
        kwargs["max_sequence_length"] = 256  # schnell's limit; less T5 memory
    else:
        kwargs["negative_prompt"] = negative_prompt or None
    with torch.inference_mode():
        image = pipe(**kwargs).images[0]
    if not np.isfinite(image).all():
        raise PodiumError("the image came out as NaN (fp16 overflow?): try another model or the CPU")
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
