"""Colour held to a reference frame: each frame's per-channel mean and spread in CIE Lab moved
to the reference's (Reinhard et al. 2001). Long audio-driven generations drift in colour and
exposure chunk after chunk; matching every frame to the one portrait keeps segments alike."""
from __future__ import annotations

import cv2
import numpy as np

from ..errors import PodiumError


def lab_stats(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of an RGB float frame in Lab."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return lab.mean(axis=0), lab.std(axis=0)


def match_frame(rgb: np.ndarray, ref_mean: np.ndarray, ref_std: np.ndarray,
                strength: float) -> np.ndarray:
    """One RGB float frame in [0, 1] with its Lab statistics moved `strength` of the way to
    the reference's."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2Lab)
    mean = lab.reshape(-1, 3).mean(axis=0)
    std = lab.reshape(-1, 3).std(axis=0)
    scale = ref_std / np.maximum(std, 1e-3)  # a flat channel keeps its spread
    matched = (lab - mean) * scale + ref_mean
    lab = lab + strength * (matched - lab)
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB), 0.0, 1.0)


def match_frames(frames: np.ndarray, reference: np.ndarray, strength: float) -> np.ndarray:
    """Every frame of (B, H, W, 3) float RGB matched to `reference` (H', W', 3); strength 0
    gives the frames back unchanged."""
    if not 0.0 <= strength <= 1.0:
        raise PodiumError(f"strength must be between 0 and 1, got {strength}")
    if frames.ndim != 4 or frames.shape[-1] < 3 or reference.ndim != 3 or reference.shape[-1] < 3:
        raise PodiumError(f"expected frames (B, H, W, 3) and a reference (H, W, 3), got "
                          f"{frames.shape} and {reference.shape}")
    if strength == 0.0:
        return frames
    ref_mean, ref_std = lab_stats(reference[..., :3])
    out = np.empty(frames.shape[:3] + (3,), np.float32)
    for i, frame in enumerate(frames):
        out[i] = match_frame(frame[..., :3], ref_mean, ref_std, strength)
    return out
