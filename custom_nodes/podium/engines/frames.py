"""What every visual is (a function of time, `render(t)`) and the simplest one: a batch of frames.

A visual is a function of time, not a list of frames: the writer pulls frames one at a time, so
memory stays flat however long the video is.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import PodiumError


class Visual(Protocol):
    width: int
    height: int

    def render(self, t: float) -> np.ndarray:
        """The RGB uint8 frame (height, width, 3) at time t seconds."""


class FrameSequence:
    """Frames from any image node (e.g. a video model's clip), one per output frame at `fps`,
    played back and forth so a short clip covers narration of any length without a jump."""

    def __init__(self, frames: np.ndarray, fps: float):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
            raise PodiumError(f"frames must be a (B, H, W, 3) batch, got shape {frames.shape}")
        if fps <= 0:
            raise PodiumError(f"fps must be above 0, got {fps}")
        self.frames, self.fps = frames, float(fps)
        self.height, self.width = frames.shape[1:3]

    def index(self, t: float) -> int:
        n, i = len(self.frames), max(int(round(t * self.fps)), 0)
        if n == 1:
            return 0
        k = i % (2 * n - 2)
        return k if k < n else 2 * n - 2 - k

    def render(self, t: float) -> np.ndarray:
        return self.frames[self.index(t)]
