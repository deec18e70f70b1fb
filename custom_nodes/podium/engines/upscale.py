"""Real-ESRGAN upscaling: loaded with spandrel (same output as basicsr) through the memory
manager, run in overlapping tiles whose seams are blended, the tile halved whenever the device
runs out of memory (CUDA's error, or the CPU allocator's).

`UpscaleVisual` wraps a presenter visual and upscales each frame as the writer pulls it
(the whole frame, or only the face), so a long video never holds more than one frame.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from ..errors import PodiumError
from ..memory import get_manager
from .frames import Visual

log = logging.getLogger("podium.upscale")
MIN_TILE = 32
REGIONS = ("frame", "face")
_OOM = ("out of memory", "can't allocate memory")  # CUDA / CPU allocator messages
# oneDNN (torch's CPU kernels) builds a kernel per shape; when that build cannot allocate it says
# only this. On the CPU it is an allocation failure like any other (the tile is halved).
_CPU_OOM = ("could not create a primitive",)
WORK_BYTES = 512 * 512 * 4 * 4 * 64 * 2 * 3  # a few 64-channel fp16 maps of a 512 px tile at x4
Box = tuple[int, int, int, int]  # x1, y1, x2, y2, as lip sync's FaceDetector gives


def load_upscaler(path: str | os.PathLike):
    """The spandrel model in `path` (.pth / .safetensors), eval, no grad, placed by the manager;
    fp16 when the manager's device is CUDA and the model supports it, else fp32."""
    path = Path(path)
    if not path.is_file():
        raise PodiumError(f"upscale model not found: {path}")
    manager = get_manager()

    def loader():
        import spandrel
        try:
            model = spandrel.ModelLoader().load_from_file(str(path))
        except Exception as exc:  # unknown architecture, truncated or foreign file
            raise PodiumError(f"cannot load upscale model {path}: {exc}") from None
        if not isinstance(model, spandrel.ImageModelDescriptor):
            raise PodiumError(f"{path} is a {model.architecture.id} model, not an image upscaler")
        model.eval().model.requires_grad_(False)
        if manager.device.startswith("cuda") and model.supports_half:
            model.half()
        return model

    return manager.load(f"upscale:{path.resolve()}", loader, kind="torch", stage="upscale",
                        size_bytes=path.stat().st_size, work_bytes=WORK_BYTES)


def upscale_image(model, rgb: np.ndarray, tile: int = 512, overlap: int = 32) -> np.ndarray:
    """RGB uint8 (H, W, 3) upscaled by `model.scale`, tiled; see `upscale_tensor`."""
    return upscale_rgb(model, rgb, tile, overlap)[0]


def upscale_rgb(model, rgb: np.ndarray, tile: int, overlap: int = 32) -> tuple[np.ndarray, int]:
    """(upscaled RGB uint8, the tile size to use from now on)."""
    import torch
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise PodiumError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255.0
    out, tile = upscale_tensor(model, image, tile, overlap)
    out = (out[0].clamp_(0, 1) * 255.0).round_().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(out.numpy()), tile


def upscale_tensor(model, image, tile: int = 512, overlap: int = 32):
    """(1, 3, H, W) float CPU tensor in [0, 1] -> ((1, 3, sH, sW) float CPU tensor, tile).

    On out-of-memory the whole image is redone with half the tile, down to MIN_TILE; the tile
    returned is the one that fitted (the one asked for if nothing failed), for the next call.
    """
    import gc
    import torch
    fitted, halved = max(min(int(tile), max(image.shape[-2:])), 1), False
    while True:
        try:
            return _tiled(model, image, fitted, overlap), (fitted if halved else tile)
        except (RuntimeError, MemoryError) as exc:  # torch.OutOfMemoryError is a RuntimeError
            if not _out_of_memory(exc, model.device):
                raise
            if fitted // 2 < MIN_TILE:
                raise PodiumError(f"not enough memory on {model.device} to upscale even {fitted} px "
                                  "tiles: free memory, lower the output size or use a smaller preset") from None
        gc.collect()  # outside the except block: the failed tile's tensors are gone by now
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        log.warning("upscale: out of memory on %s with %d px tiles, retrying with %d",
                    model.device, fitted, fitted // 2)
        fitted, halved = fitted // 2, True


def _out_of_memory(exc: BaseException, device) -> bool:
    """Whether `exc` is an allocation failure on `device` (CUDA's, the CPU allocator's, oneDNN's)."""
    if isinstance(exc, MemoryError):
        return True
    message = str(exc).lower()
    markers = _OOM + (_CPU_OOM if str(device).startswith("cpu") else ())
    return any(marker in message for marker in markers)


def _starts(length: int, tile: int, step: int) -> list[int]:
    return [0] if length <= tile else [*range(0, length - tile, step), length - tile]


def _ramp(n: int, first: bool, last: bool, ramp: int):
    """1-D blend weights of a tile: rising over `ramp` pixels on sides shared with a neighbour."""
    import torch
    w, r = torch.ones(n), min(ramp, n // 2)
    up = (torch.arange(r, dtype=torch.float32) + 0.5) / max(r, 1)
    if r and not first:
        w[:r] = up
    if r and not last:
        w[n - r:] = up.flip(0)
    return w


def _tiled(model, image, tile: int, overlap: int):
    import torch
    _, _, h, w = image.shape
    s = int(model.scale)
    overlap = min(overlap, tile // 2)
    out = torch.zeros(1, 3, h * s, w * s)
    weight = torch.zeros(1, 1, h * s, w * s)
    th, tw = min(tile, h), min(tile, w)
    for y in _starts(h, tile, tile - overlap):
        for x in _starts(w, tile, tile - overlap):
            patch = image[..., y:y + th, x:x + tw].to(model.device, model.dtype)
            with torch.inference_mode():
                result = model(patch).float().cpu()
            mask = (_ramp(th * s, y == 0, y + th == h, overlap * s)[:, None]
                    * _ramp(tw * s, x == 0, x + tw == w, overlap * s)[None, :])
            out[..., y * s:(y + th) * s, x * s:(x + tw) * s] += result * mask
            weight[..., y * s:(y + th) * s, x * s:(x + tw) * s] += mask
    return out.div_(weight)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    shrink = width < rgb.shape[1] or height < rgb.shape[0]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def default_face_detector() -> Callable[[np.ndarray], Optional[Box]]:
    """The pack's face detector (lip sync's: YuNet when installed, else OpenCV 4's Haar
    cascade); a clear PodiumError when neither is available."""
    try:
        from .lipsync import FaceDetector
    except ImportError as exc:
        raise PodiumError(f"no face detector in this install ({exc}): use region 'frame'") from None
    return FaceDetector("auto").detect


class UpscaleVisual:
    """A Visual whose frames are `base`'s, upscaled as they are rendered.

    `model`: a loaded upscaler, or its path (then asked of the memory manager every frame, so
    nothing holds the weights between stages). region "frame": the whole frame, then resized
    to `out_size`; "face": the frame resized conventionally, the face box (detected every
    `detect_every` frames, smoothed, widened by `margin`) upscaled by the model and pasted back
    with soft edges. `detector(rgb) -> (x1, y1, x2, y2) | None`; default: the pack's own.
    """

    def __init__(self, base: Visual, model, region: str = "frame",
                 out_size: Optional[tuple[int, int]] = None, tile: int = 512, overlap: int = 32,
                 detect_every: int = 5, margin: float = 0.25,
                 detector: Optional[Callable[[np.ndarray], Optional[Box]]] = None):
        if region not in REGIONS:
            raise PodiumError(f"upscale region must be one of {REGIONS}, not {region!r}")
        self.base, self._model, self.region = base, model, region
        self.tile, self.overlap, self.margin = tile, overlap, margin
        self.detect_every = max(int(detect_every), 1)
        self.detector = detector or (default_face_detector() if region == "face" else None)
        scale = int(self.model().scale)
        self.width, self.height = out_size or (base.width * scale, base.height * scale)
        self._box: Optional[np.ndarray] = None
        self._frames = self._misses = 0
        self._last_t = float("-inf")

    def model(self):
        return load_upscaler(self._model) if isinstance(self._model, (str, os.PathLike)) else self._model

    def render(self, t: float) -> np.ndarray:
        frame = self.base.render(t)
        if self.region == "frame":
            big, self.tile = upscale_rgb(self.model(), frame, self.tile, self.overlap)
            return resize(big, self.width, self.height)
        out = resize(frame, self.width, self.height).copy()
        box = self._track(frame, t)
        if box is not None:
            self._paste_face(frame, out, box)
        return out

    def _track(self, frame: np.ndarray, t: float) -> Optional[np.ndarray]:
        """The smoothed face box; held between detections, dropped after two misses."""
        if t < self._last_t:  # rendered again from the start: track afresh
            self._box, self._frames, self._misses = None, 0, 0
        self._last_t = t
        if self._frames % self.detect_every == 0:
            found = self.detector(frame)
            self._misses = self._misses + 1 if found is None else 0
            if self._misses >= 2:
                self._box = None
            elif found is not None:
                found = np.asarray(found, np.float64)
                self._box = found if self._box is None else 0.5 * found + 0.5 * self._box
        self._frames += 1
        return self._box

    def _paste_face(self, frame: np.ndarray, out: np.ndarray, box: np.ndarray) -> None:
        x1, y1, x2, y2 = box
        dx, dy = (x2 - x1) * self.margin, (y2 - y1) * self.margin
        fh, fw = frame.shape[:2]
        x0, y0 = max(int(x1 - dx), 0), max(int(y1 - dy), 0)
        x1, y1 = min(int(np.ceil(x2 + dx)), fw), min(int(np.ceil(y2 + dy)), fh)
        sx, sy = self.width / fw, self.height / fh
        ox0, oy0, ox1, oy1 = round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)
        if x1 - x0 < 2 or y1 - y0 < 2 or ox1 - ox0 < 2 or oy1 - oy0 < 2:
            return
        big, self.tile = upscale_rgb(self.model(), frame[y0:y1, x0:x1], self.tile, self.overlap)
        face = resize(big, ox1 - ox0, oy1 - oy0).astype(np.float32)
        feather = max(min(ox1 - ox0, oy1 - oy0) // 8, 1)
        alpha = np.minimum(_edge(oy1 - oy0, feather)[:, None], _edge(ox1 - ox0, feather)[None, :])
        region = out[oy0:oy1, ox0:ox1].astype(np.float32)
        out[oy0:oy1, ox0:ox1] = (region + (face - region) * alpha[..., None] + 0.5).astype(np.uint8)


def _edge(n: int, feather: int) -> np.ndarray:
    """1 inside, falling to 0 over `feather` pixels at both ends."""
    i = np.arange(n, dtype=np.float32)
    return np.clip(np.minimum(i + 0.5, n - i - 0.5) / feather, 0.0, 1.0)
