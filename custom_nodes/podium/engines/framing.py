"""Putting a portrait into the generation's frame without cutting the head off.

The Wan nodes centre-crop their reference to width x height (comfy.utils.common_upscale(...,
"center")): a square portrait in a 16:9 frame loses its top and chin. HuMo's own pipeline pads
the reference to the target aspect instead; so do we, with the portrait's edge colours
stretched outward (no black bars for the model to animate)."""
from __future__ import annotations

import cv2
import numpy as np


def pad_to_aspect(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """`rgb` (H, W, 3 uint8) scaled to fit inside width x height, centred, the rest filled by
    replicating its edges; the result is exactly height x width."""
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    fitted = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return cv2.copyMakeBorder(fitted, top, height - new_h - top, left, width - new_w - left, cv2.BORDER_REPLICATE)
