"""Timing nodes for audio-driven video models (cinema): the frame count to ask a Wan model
for, and frame-exact retiming of its clip from the native 16 fps to the user's fps."""
from ..engines.timing import retime_indices, wan_frame_count
from .comfy_types import samples_from_audio


def audio_seconds(audio: dict) -> float:
    samples, sample_rate = samples_from_audio(audio)
    return len(samples) / sample_rate


class PodiumFrameCount:
    """How many frames a Wan model (InfiniteTalk, S2V, HuMo) should make for this audio: the
    fewest 4n+1 frames (Wan's rule: its VAE packs 4 frames per latent after the first) that
    cover the audio at `fps`, capped at `max_frames`."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "audio": ("AUDIO",),
                "fps": ("FLOAT", {"default": 16.0, "min": 1.0, "max": 120.0, "step": 0.01,
                                  "tooltip": "The model's native frame rate (Wan: 16)."}),
                "max_frames": ("INT", {"default": 81, "min": 1, "max": 10001, "step": 4,
                                       "tooltip": "The model's length limit per generation (Wan: 81)."}),
            },
        }

    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("frames",)
    FUNCTION = "count"
    CATEGORY = "Podium/cinema"
    DESCRIPTION = "Frames (4n+1) for a Wan video model to cover the audio at its native fps."

    def count(self, audio, fps, max_frames):
        return (wan_frame_count(audio_seconds(audio), fps, max_frames),)


class PodiumRetime:
    """The model's clip at the user's fps: round(audio seconds x fps) frames, each the source
    frame nearest its timestamp (no blending). The audio is never retimed, so video and audio
    agree within one frame."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "source_fps": ("FLOAT", {"default": 16.0, "min": 1.0, "max": 120.0, "step": 0.01,
                                         "tooltip": "The rate the frames were made at (Wan: 16)."}),
                "fps": ("INT", {"default": 25, "min": 1, "max": 120,
                                "tooltip": "Output rate: must equal the Save node's fps."}),
                "audio": ("AUDIO", {"tooltip": "The narration the clip was made for; its length sets the frame count."}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "retime"
    CATEGORY = "Podium/cinema"
    DESCRIPTION = "Frame-exact retiming to the output fps for the narration's length; audio untouched."

    def retime(self, images, source_fps, fps, audio):
        indices = retime_indices(len(images), source_fps, fps, audio_seconds(audio))
        if hasattr(images, "index_select"):
            import torch
            return (images.index_select(0, torch.from_numpy(indices)),)
        return (images[indices],)
