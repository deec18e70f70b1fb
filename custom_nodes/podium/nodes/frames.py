"""Frames node: an IMAGE batch from core nodes (a video model's clip) as a Podium visual, so
Podium's Upscale and Save video take it."""
from ..engines.frames import FrameSequence
from ..errors import PodiumError
from .comfy_types import rgb_frames_from_image


def frame_sequence(frames, fps: float) -> FrameSequence:
    """The IMAGE batch as frames shown at `fps` (H.264 needs an even width and height)."""
    visual = FrameSequence(rgb_frames_from_image(frames), fps)
    if visual.width % 2 or visual.height % 2:
        raise PodiumError(f"frames are {visual.width}x{visual.height}; H.264 needs an even "
                          "width and height: resize or crop them first")
    return visual


class PodiumFrames:
    """One IMAGE per video frame at `fps` (e.g. Podium Retime's output); a shorter batch is
    played back and forth to the narration's length."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE",),
                "fps": ("INT", {"default": 25, "min": 1, "max": 120,
                                "tooltip": "The frames' rate: must equal the Save node's fps."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "frames"
    CATEGORY = "Podium/cinema"
    DESCRIPTION = "An IMAGE batch (a video model's frames) as the visual for Upscale and Save video."

    def frames(self, frames, fps):
        return (frame_sequence(frames, fps),)
