"""The portrait padded (not cropped) to the cinema generation's width x height."""
from ..engines.framing import pad_to_aspect
from .comfy_types import image_from_frames, rgb_from_image


class PodiumFitPortrait:
    """The portrait at exactly width x height, padded to that aspect so the Wan nodes' centre
    crop cuts nothing (their reference goes through common_upscale(..., "center"))."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "width": ("INT", {"default": 832, "min": 16, "max": 4096, "step": 16}),
                             "height": ("INT", {"default": 480, "min": 16, "max": 4096, "step": 16})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "fit"
    CATEGORY = "Podium/cinema"
    DESCRIPTION = "Pad the portrait to the generation's aspect (the head stays whole)."

    def fit(self, image, width, height):
        return (image_from_frames(pad_to_aspect(rgb_from_image(image), width, height)[None]),)
