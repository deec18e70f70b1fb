"""Training pictures for an identity LoRA: 5-30 images, each with one face, cropped square
around that face (head and shoulders, the face centred) and sized for the base model.

Torch-free (PIL, OpenCV): the checks run before a model is loaded, so bad input costs nothing.
The face comes from lip sync's detector (YuNet when installed, else OpenCV's Haar cascade).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import UsageError

MIN_IMAGES, MAX_IMAGES = 5, 30
MAX_SIDE = 2048  # bigger pictures (a 20-megapixel photo) are downscaled before anything else
FACE_SPAN = 2.2  # the crop's side, in face heights: head, hair and some shoulder


def read_rgb(path: Path, say: Callable[[str], None] = lambda _l: None) -> np.ndarray:
    """The picture upright (EXIF orientation) as RGB uint8, at most MAX_SIDE on its long side."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise UsageError(f"cannot read {path} as a picture ({exc}): give a JPEG or PNG") from None
    w, h = image.size
    if max(w, h) > MAX_SIDE:
        scale = MAX_SIDE / max(w, h)
        image = image.resize((max(round(w * scale), 1), max(round(h * scale), 1)), Image.LANCZOS)
        say(f"{path.name} downscaled from {w}x{h} to {image.size[0]}x{image.size[1]}")
    return np.asarray(image)


def square_around(box: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int]:
    """(left, top, side) of the largest square up to FACE_SPAN face heights, centred on the face
    and shifted (not shrunk) to stay inside the picture."""
    x1, y1, x2, y2 = box
    side = int(min(max(x2 - x1, y2 - y1) * FACE_SPAN, width, height))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(min(max(cx - side / 2, 0), width - side))
    top = int(min(max(cy - side / 2, 0), height - side))
    return left, top, side


def face_crops(paths: Sequence[Path], size: int, detect: Optional[Callable] = None,
               say: Callable[[str], None] = lambda _l: None) -> list[np.ndarray]:
    """Each picture cropped around its face and resized to `size` x `size` (RGB uint8).
    `detect(rgb) -> box | None` finds the face (default: lip sync's FaceDetector)."""
    import cv2

    paths = [Path(p) for p in paths]
    if not MIN_IMAGES <= len(paths) <= MAX_IMAGES:
        fix = ("add pictures of the same person (different days, light and angles help)"
               if len(paths) < MIN_IMAGES else f"keep the best {MAX_IMAGES}")
        raise UsageError(f"training needs {MIN_IMAGES} to {MAX_IMAGES} images, the profile has {len(paths)}: {fix}")
    if detect is None:
        from .lipsync import FaceDetector
        detect = FaceDetector("auto").detect
    crops = []
    for path in paths:
        rgb = read_rgb(path, say)
        box = detect(rgb)
        if box is None:
            raise UsageError(f"{path.name} shows no face the detector can find: use a picture where the "
                             "face is clear, frontal and not too small")
        left, top, side = square_around(tuple(int(v) for v in box), rgb.shape[1], rgb.shape[0])
        crop = np.ascontiguousarray(rgb[top:top + side, left:left + side])
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
        crops.append(cv2.resize(crop, (size, size), interpolation=interpolation))
    return crops
