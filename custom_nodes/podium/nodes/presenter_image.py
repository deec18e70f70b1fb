"""Presenter image node: a presenter drawn by a diffusers model (SD1.5, SDXL, FLUX.1), made once
and plugged into PodiumPresenter's `portrait`, so every segment shows the same person."""
from __future__ import annotations

from pathlib import Path

from ..engines.presenter_image import PRESENTER_NEGATIVE, draw, family_of, load_pipeline, native_size, presenter_prompt, set_lora
from ..errors import PodiumError
from ..profiling import reported_stage
from .. import models
from ..models import ids_of_kind
from ..paths import confined
from .fingerprint import stat_stamp

KIND = "diffusers"
FOLDER = "diffusers"
FALLBACK_IDS = ["stable-diffusion-v1-5", "stable-diffusion-xl-base-1.0", "flux1-schnell"]


def diffusers_model_ids() -> list[str]:
    """Registry ids of kind diffusers (the usual three if the registry lists none)."""
    return ids_of_kind(KIND) or list(FALLBACK_IDS)


def model_folder_path(model: str, model_folder: str = "") -> Path:
    """`model_folder` when given (relative: in the diffusers model folders), else the registry's."""
    return models.model_path(model, model_folder, what="model_folder", folder=FOLDER, directory=True,
                             marker="model_index.json", search=True, label="diffusers model folder")


class PodiumPresenterImage:
    """Text-to-image of the presenter; an empty prompt describes a presenter in the script's stage."""

    @classmethod
    def INPUT_TYPES(cls):
        ids = diffusers_model_ids()
        size = {"default": 0, "min": 0, "max": 4096, "step": 8,
                "tooltip": "Multiple of 8 (16 for FLUX); 0: the model's own (512 SD1.5, 1024 SDXL/FLUX)."}
        return {
            "required": {
                "model": (ids, {"default": ids[0], "tooltip": "A diffusers model from models.yaml (podium models list)."}),
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "Empty: a head-and-shoulders presenter in the script's stage."}),
                "negative": ("STRING", {"multiline": True, "default": "",
                                        "tooltip": "What to avoid (ignored by FLUX). Empty with an empty prompt: "
                                                   "the usual flaws of presenter portraits."}),
                "width": ("INT", dict(size)),
                "height": ("INT", dict(size)),
                "steps": ("INT", {"default": 0, "min": 0, "max": 150,
                                  "tooltip": "0: the model's default (25 SD1.5, 30 SDXL, 4 FLUX.1-schnell)."}),
                "guidance": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 30.0, "step": 0.1,
                                       "tooltip": "-1: the model's default (7.5 SD1.5, 6 SDXL, 0 FLUX.1-schnell)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                                 "tooltip": "The same seed gives the same image on any device."}),
            },
            "optional": {
                "model_folder": ("STRING", {"default": "", "tooltip": "Any diffusers folder (relative: in "
                                            "models/diffusers); wins over model."}),
                "lora_path": ("STRING", {"default": "", "tooltip": "An identity LoRA (.safetensors, or a folder "
                                         "holding one); put its trigger words in the prompt."}),
                "lora_scale": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05}),
                "script": ("PODIUM_SCRIPT",),
                "aspect": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.001,
                                     "tooltip": "Width / height when width and height are 0: the model's "
                                                "native pixel count in this shape (the video's)."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "make"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "A presenter portrait from SD1.5, SDXL or FLUX.1 (diffusers), optionally with an identity LoRA."

    @classmethod
    def IS_CHANGED(cls, model="", model_folder="", lora_path="", **_):
        def files():
            lora = (lora_path or "").strip()
            if lora and confined():
                lora = models.given_path(lora, "lora_path", "loras", directory=None)
            return [model_folder_path(model, model_folder)] + ([Path(lora)] if lora else [])
        return stat_stamp(files)

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None):
        for name, value in (("width", width), ("height", height)):
            if value is not None and value % 8:  # None: linked, known only when it runs
                return f"{name} must be a multiple of 8, got {value}"
        return True

    @reported_stage("presenter_image")
    def make(self, model, prompt, negative, width, height, steps, guidance, seed,
             model_folder="", lora_path="", lora_scale=1.0, script=None, aspect=1.0):
        import torch

        if width % 8 or height % 8:
            raise PodiumError(f"width and height must be multiples of 8, got {width}x{height}")
        if not prompt.strip():
            prompt = presenter_prompt(getattr(script, "stage", "") or "")
            negative = negative or PRESENTER_NEGATIVE
        pipe = load_pipeline(model_folder_path(model, model_folder))
        lora = lora_path.strip() or None
        if lora and confined():
            lora = models.given_path(lora, "lora_path", "loras", directory=None)
        set_lora(pipe, lora, lora_scale)
        if not width and not height:
            width, height = native_size(family_of(pipe), aspect)
        rgb = draw(pipe, prompt, negative, width, height, steps, guidance, seed)
        return (torch.from_numpy(rgb).float().div_(255.0)[None].contiguous(),)
