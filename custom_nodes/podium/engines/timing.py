"""Frame timing for audio-driven video models: how many frames to ask for, and frame-exact
retiming from the model's native rate to the user's fps (the audio is never retimed)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import PodiumError
from .output import frames_for


def wan_frame_count(seconds: float, fps: float, max_frames: int) -> int:
    """Frames a Wan model generates for `seconds` of audio at `fps`: the fewest 4n+1 frames
    (Wan's VAE packs 4 frames per latent after the first) whose span covers the audio, capped
    at the largest 4n+1 not above `max_frames` (the model's length limit)."""
    if fps <= 0 or max_frames < 1:
        raise PodiumError(f"fps must be above 0 and max_frames at least 1 (got {fps}, {max_frames})")
    needed = max(math.ceil(seconds * fps - 1e-6), 1)
    frames = 4 * math.ceil((needed - 1) / 4) + 1
    cap = 4 * ((max_frames - 1) // 4) + 1
    return min(frames, cap)


def retime_indices(n_source: int, source_fps: float, fps: float, seconds: float) -> np.ndarray:
    """For each output frame at `fps` over `seconds` (round(seconds * fps) frames, as the video
    encoder counts them), the source frame nearest its timestamp. No blending: a talking face
    stays sharp, and every output frame is one the model made.

    A source clip that ends more than one source frame before the audio is an error, not a
    frozen tail: it would put the lips out of sync."""
    if source_fps <= 0 or fps <= 0:
        raise PodiumError(f"source_fps and fps must be above 0 (got {source_fps}, {fps})")
    if n_source < 1:
        raise PodiumError("no frames to retime")
    count = frames_for(seconds, fps)
    nearest = np.floor(np.arange(count) * (source_fps / fps) + 0.5 + 1e-9).astype(np.int64)
    if nearest[-1] > n_source:
        raise PodiumError(
            f"the clip has {n_source} frames at {source_fps:g} fps ({n_source / source_fps:.2f} s) "
            f"but the audio lasts {seconds:.2f} s: generate more frames (PodiumFrameCount) "
            "or cut shorter segments")
    return np.minimum(nearest, n_source - 1)
