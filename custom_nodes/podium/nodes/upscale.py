"""Upscale nodes: Real-ESRGAN (spandrel) on a Podium visual, frame by frame as the video is
written, or on a ComfyUI IMAGE batch for use with core nodes."""
from __future__ import annotations

from pathlib import Path

from ..engines.upscale import MIN_TILE, REGIONS, UpscaleVisual, load_upscaler, upscale_tensor
from ..errors import PodiumError
from ..profiling import reported_stage
from .. import models
from ..models import ids_of_kind
from .fingerprint import stat_stamp

KIND = "realesrgan"
FOLDER = "upscale_models"
FALLBACK_IDS = ["realesrgan-x2plus", "realesrgan-x4plus"]  # as models.yaml names them


def upscaler_ids() -> list[str]:
    """Registry ids of kind realesrgan (the usual two if the registry lists none)."""
    return ids_of_kind(KIND) or list(FALLBACK_IDS)


def upscaler_path(model: str, model_path: str = "") -> Path:
    """`model_path` when given (relative: in the upscale_models folders), else the registry's file."""
    return models.model_path(model, model_path, what="model_path", folder=FOLDER, search=True,
                             label="upscale model", error=PodiumError)


def _model_inputs() -> dict:
    ids = upscaler_ids()
    return {"model": (ids, {"default": ids[0], "tooltip": "A Real-ESRGAN model from models.yaml."}),
            "tile": ("INT", {"default": 512, "min": MIN_TILE, "max": 4096, "step": 32,
                             "tooltip": "Tile size in input pixels; halved automatically on out-of-memory."})}


_MODEL_PATH = {"model_path": ("STRING", {"default": "", "tooltip": "Any spandrel-loadable .pth/.safetensors "
                                                                    "(relative: in models/upscale_models); wins over model."})}


class PodiumUpscale:
    """Upscale every frame of a visual, or only the face, as the video is written."""

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": 0, "min": 0, "max": 8192, "step": 2}
        return {
            "required": {
                "visual": ("PODIUM_VISUAL",),
                **_model_inputs(),
                "region": (list(REGIONS), {"default": "frame", "tooltip": "frame: the whole frame; face: only "
                                           "the face is upscaled by the model, the rest resized."}),
                "width": ("INT", {**size, "tooltip": "Output width; 0: native scale (or kept in proportion)."}),
                "height": ("INT", {**size, "tooltip": "Output height; 0: native scale (or kept in proportion)."}),
            },
            "optional": dict(_MODEL_PATH),
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "upscale"
    CATEGORY = "Podium/upscale"
    DESCRIPTION = "Real-ESRGAN on each frame (or the face only), tiled, streamed frame by frame."

    @classmethod
    def IS_CHANGED(cls, model="", model_path="", **_):
        return stat_stamp(lambda: upscaler_path(model, model_path))

    @reported_stage("upscale")
    def upscale(self, visual, model, tile, region, width, height, model_path=""):
        path = upscaler_path(model, model_path)
        scale = int(load_upscaler(path).scale)  # loads now: a bad file fails here, not mid-video
        width, height = output_size(visual.width, visual.height, scale, width, height)
        return (UpscaleVisual(visual, path, region=region, out_size=(width, height), tile=tile),)


def output_size(w: int, h: int, scale: int, width: int, height: int) -> tuple[int, int]:
    """The output size: given, native scale when both are 0, the aspect kept when one is 0."""
    if not width and not height:
        width, height = w * scale, h * scale
    elif not height:
        height = max(round(width * h / w / 2) * 2, 2)
    elif not width:
        width = max(round(height * w / h / 2) * 2, 2)
    if width % 2 or height % 2:
        raise PodiumError(f"width and height must be even for H.264, got {width}x{height}")
    return width, height


class PodiumUpscaleImage:
    """Real-ESRGAN on a ComfyUI IMAGE batch (B, H, W, 3), for use with core image nodes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), **_model_inputs()}, "optional": dict(_MODEL_PATH)}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "upscale"
    CATEGORY = "Podium/upscale"
    DESCRIPTION = "Real-ESRGAN on an IMAGE batch, tiled, the tile halved on out-of-memory."

    @classmethod
    def IS_CHANGED(cls, model="", model_path="", **_):
        return stat_stamp(lambda: upscaler_path(model, model_path))

    @reported_stage("upscale")
    def upscale(self, image, model, tile, model_path=""):
        import torch
        upscaler = load_upscaler(upscaler_path(model, model_path))
        batch = torch.as_tensor(image).detach().float().cpu()[..., :3]
        out = []
        for item in batch:
            result, tile = upscale_tensor(upscaler, item.permute(2, 0, 1)[None].contiguous(), tile)
            out.append(result[0].clamp_(0, 1).permute(1, 2, 0))
        return (torch.stack(out).contiguous(),)
