"""Presenter visuals for the draft preset, rendered frame by frame on demand.

A visual is a function of time (`render(t)`), not a list of frames: the writer pulls frames
one at a time, so memory stays flat however long the video is.
"""
from __future__ import annotations

import bisect
import math
import textwrap
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from ..errors import PodiumError
from .fonts import font
from .script import Script
from .speech import Speech


def load_image(path: str | Path) -> np.ndarray:
    """Read a picture as RGB uint8, honouring EXIF rotation; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise PodiumError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise PodiumError(
            f"cannot read image {path}: it is not a picture Pillow can decode ({err}); "
            "give a PNG, JPEG or WebP portrait"
        ) from None


def speech_envelope(speech: Speech | None, fps: float = 50.0) -> np.ndarray:
    """Loudness in [0, 1] sampled at `fps`, smoothed: drives gentle nods while speaking."""
    if speech is None or not len(speech.samples):
        return np.zeros(1, np.float32)
    hop = max(int(speech.sample_rate / fps), 1)
    usable = len(speech.samples) // hop * hop
    rms = np.sqrt(np.mean(speech.samples[:usable].reshape(-1, hop) ** 2, axis=1))
    kernel = np.hanning(15)
    smooth = np.convolve(rms, kernel / kernel.sum(), mode="same")
    return (smooth / max(float(smooth.max()), 1e-6)).astype(np.float32)


class PortraitMotion:
    """A still portrait that breathes, sways and nods with the speech (no face model)."""

    def __init__(self, image: np.ndarray, width: int, height: int,
                 speech: Speech | None = None, strength: float = 1.0):
        self.width, self.height, self.strength = width, height, strength
        self._canvas = _compose_portrait(image, width, height)
        self.portrait_box = portrait_box(image.shape[1], image.shape[0], width, height)
        self._envelope = speech_envelope(speech)
        self._envelope_fps = 50.0

    @property
    def still(self) -> np.ndarray:
        """The framed portrait without motion (what an idle clip animates)."""
        return self._canvas

    def render(self, t: float) -> np.ndarray:
        return self.move(self._canvas, t)

    def move(self, canvas: np.ndarray, t: float) -> np.ndarray:
        """`canvas` (the still, or the still with a talking mouth) moved as at time t."""
        return cv2.warpAffine(canvas, self.matrix(t), (self.width, self.height),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def matrix(self, t: float) -> np.ndarray:
        """The 2x3 affine of the sway, breath and nods at time t."""
        k = self.strength
        index = min(int(t * self._envelope_fps), len(self._envelope) - 1)
        talk = float(self._envelope[index])
        scale = 1.05 + k * (0.012 * math.sin(2 * math.pi * t / 6.5) + 0.006 * talk)
        angle = k * (0.5 * math.sin(2 * math.pi * t / 5.3) + 0.25 * math.sin(2 * math.pi * t / 2.1))
        dx = k * 6.0 * math.sin(2 * math.pi * t / 7.7)
        dy = k * (4.0 * math.sin(2 * math.pi * t / 4.9) - 5.0 * talk)
        centre = (self.width / 2, self.height * 0.4)  # pivot near the face, not the middle
        matrix = cv2.getRotationMatrix2D(centre, angle, scale)
        matrix[:, 2] += (dx, dy)
        return matrix


def portrait_box(w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): where a w x h portrait lies in the width x height frame, whole and centred."""
    fit = min(width / w, height / h)
    fw, fh = max(round(w * fit), 1), max(round(h * fit), 1)
    x, y = (width - fw) // 2, (height - fh) // 2
    return x, y, x + fw, y + fh


def _compose_portrait(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The portrait whole and centred, over a blurred, darkened copy that fills the frame."""
    h, w = image.shape[:2]
    cover = max(width / w, height / h)
    background = cv2.resize(image, (max(round(w * cover), width), max(round(h * cover), height)),
                            interpolation=cv2.INTER_AREA)
    y0 = (background.shape[0] - height) // 2
    x0 = (background.shape[1] - width) // 2
    background = background[y0:y0 + height, x0:x0 + width]
    background = (cv2.GaussianBlur(background, (0, 0), sigmaX=max(width, height) / 40) * 0.45)
    canvas = background.astype(np.uint8)
    fit = min(width / w, height / h)
    fw, fh = max(round(w * fit), 1), max(round(h * fit), 1)
    interpolation = cv2.INTER_AREA if fit < 1 else cv2.INTER_CUBIC
    portrait = cv2.resize(image, (fw, fh), interpolation=interpolation)
    x, y = (width - fw) // 2, (height - fh) // 2
    canvas[y:y + fh, x:x + fw] = portrait
    return np.ascontiguousarray(canvas)


class SlideDeck:
    """Lecture slides from the script: one per segment, bullets appear as they are spoken."""

    BACKGROUND = (18, 24, 38)
    ACCENT = (242, 153, 74)

    def __init__(self, script: Script, speech: Speech, width: int, height: int):
        self.width, self.height = width, height
        self.script, self.speech = script, speech
        self._cache: dict[tuple[int, int], np.ndarray] = {}
        self._bar_y = height - max(height // 90, 4)
        self._segment_starts = [start for start, _ in speech.segment_bounds]
        self._sentence_starts = [[s.start for s in speech.sentences if s.segment == i]
                                 for i in range(len(speech.segment_bounds))]

    def _state(self, t: float) -> tuple[int, int]:
        """(segment, how many of its bullets are shown) at time t: a bullet appears when its
        sentence starts to be spoken."""
        segment = max(bisect.bisect_right(self._segment_starts, t) - 1, 0)
        return segment, bisect.bisect_right(self._sentence_starts[segment], t)

    def render(self, t: float) -> np.ndarray:
        key = self._state(t)
        if key not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = self._draw(*key)
        frame = self._cache[key].copy()
        done = min(max(t / max(self.speech.duration, 1e-6), 0.0), 1.0)
        frame[self._bar_y:, : int(self.width * done)] = self.ACCENT
        return frame

    def _draw(self, segment_index: int, shown: int) -> np.ndarray:
        segment = self.script.segments[segment_index]
        w, h = self.width, self.height
        image = Image.new("RGB", (w, h), self.BACKGROUND)
        draw = ImageDraw.Draw(image)
        margin = w // 16
        title_font, body_font = font(max(h // 14, 12), bold=True), font(max(h // 24, 10))
        draw.text((margin, h // 12), segment.title, font=title_font, fill=(255, 255, 255))
        y = h // 12 + title_font.size + h // 40
        draw.rectangle([margin, y, margin + w // 10, y + max(h // 180, 2)], fill=self.ACCENT)
        y += h // 18
        chars = max(int((w - 2 * margin) / (body_font.size * 0.55)) - 3, 10)
        for i, bullet in enumerate(segment.bullets[:shown]):
            colour = (255, 255, 255) if i == shown - 1 else (150, 160, 180)
            for j, line in enumerate(textwrap.wrap(bullet, chars)[:2]):
                if y > h - body_font.size * 3:
                    break
                prefix = "•  " if j == 0 else "    "
                draw.text((margin, y), prefix + line, font=body_font, fill=colour)
                y += int(body_font.size * 1.35)
            y += body_font.size // 2
        footer = self.script.title  # no "2 / 5": each segment is rendered on its own
        small = font(max(h // 40, 9))
        draw.text((margin, h - small.size * 3), footer, font=small, fill=(110, 120, 140))
        return np.asarray(image).copy()
