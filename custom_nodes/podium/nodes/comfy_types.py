"""Adapters between ComfyUI's own data types and the engines' numpy types.

ComfyUI's AUDIO is {"waveform": tensor (B, C, T), "sample_rate": int} and IMAGE is a float
tensor (B, H, W, 3) in [0, 1]; using them lets core and third-party nodes plug in.

The draft path never needs torch, and importing it costs seconds: where torch is not loaded
already (Podium's in-process runner on the draft path; never inside ComfyUI, which always has
it) AUDIO carries a numpy waveform of the same shape, which every Podium node accepts.
"""
from __future__ import annotations

import sys

import numpy as np


def audio_from_samples(samples: np.ndarray, sample_rate: int) -> dict:
    """Mono AUDIO of one item from a 1-D array."""
    return audio_from_channels(np.reshape(samples, (1, -1)), sample_rate)


def samples_from_audio(audio: dict) -> tuple[np.ndarray, int]:
    """First item of the batch, channels averaged to mono."""
    channels, rate = channels_from_audio(audio)
    return np.ascontiguousarray(channels.mean(axis=0), np.float32), rate


def audio_seconds(audio: dict) -> float:
    """How long an AUDIO lasts, from its shape (nothing converted or copied)."""
    return audio["waveform"].shape[-1] / float(audio["sample_rate"])


def rgb_from_image(image) -> np.ndarray:
    """First image of an IMAGE batch as RGB uint8."""
    array = image[0]
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return (np.clip(np.asarray(array)[..., :3], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def rgb_frames_from_image(image) -> np.ndarray:
    """A whole IMAGE batch (B, H, W, 3) as RGB uint8 frames, converted one frame at a time so
    no second float copy of a long clip is made."""
    frames = np.empty((len(image), *image.shape[1:3], 3), np.uint8)
    for i in range(len(image)):
        frames[i] = rgb_from_image(image[i:i + 1])
    return frames


def audio_from_channels(channels: np.ndarray, sample_rate: int) -> dict:
    """AUDIO of one item from a (channels, samples) array (stereo music keeps both channels)."""
    waveform = np.ascontiguousarray(channels, np.float32)
    waveform = waveform.reshape(1, -1, waveform.shape[-1])
    if "torch" in sys.modules:
        waveform = sys.modules["torch"].from_numpy(waveform)
    return {"waveform": waveform, "sample_rate": int(sample_rate)}


def channels_from_audio(audio: dict) -> tuple[np.ndarray, int]:
    """First item of the batch as (channels, samples) float32, every channel kept."""
    waveform = audio["waveform"]
    if hasattr(waveform, "detach"):
        waveform = waveform.detach().float().cpu().numpy()
    waveform = np.asarray(waveform, np.float32)
    while waveform.ndim > 2:
        waveform = waveform[0]
    if waveform.ndim < 2:
        waveform = waveform.reshape(1, -1)
    return np.ascontiguousarray(waveform, np.float32), int(audio["sample_rate"])
def float_frames(image) -> np.ndarray:
    """An IMAGE batch (B, H, W, C) as float32 numpy RGB, without a copy where it can."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
    return np.asarray(image, np.float32)[..., :3]


def image_from_frames(frames: np.ndarray):
    """Float RGB frames (B, H, W, 3) as ComfyUI's IMAGE (a torch tensor where torch is loaded)."""
    frames = np.ascontiguousarray(frames, np.float32)
    if "torch" in sys.modules:
        return sys.modules["torch"].from_numpy(frames)
    return frames
