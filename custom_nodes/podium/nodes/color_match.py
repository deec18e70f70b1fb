"""Colour match node: a generated clip's colour held to the reference portrait."""
from ..engines.color_match import match_frames
from ..profiling import reported_stage
from .comfy_types import float_frames, image_from_frames


class PodiumColorMatch:
    """Each frame's colour (per-channel mean and spread in Lab) moved to the reference
    frame's, so long or many-segment generations do not drift in colour or exposure."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "reference": ("IMAGE", {"tooltip": "The portrait every segment starts from; its first image is used."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                                       "tooltip": "1: the reference's colour; 0: the frames unchanged."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "match"
    CATEGORY = "Podium/cinema"
    DESCRIPTION = "Hold the frames' colour to the reference frame (Lab mean/std transfer)."

    @reported_stage("color_match")
    def match(self, images, reference, strength):
        if strength == 0.0:
            return (images,)
        frames = float_frames(images)
        return (image_from_frames(match_frames(frames, float_frames(reference)[0], strength)),)
