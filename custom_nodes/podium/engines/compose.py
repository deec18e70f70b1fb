"""Layouts: the presenter over a background (picture-in-picture), or either alone.

`full`: the presenter is the frame; `pip`: the background (a slide, a scene) fills the frame and
the presenter sits in a corner box; `slides`: no presenter. The box's place is chosen per
background picture so the presenter never silently covers a slide's text or figures: the asked
corner when it is free, else another free corner, else a smaller box, else the asked corner with a
note saying so. The presenter is drawn at the box's size by its own stage (nothing is rendered
full frame to be shrunk here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

import cv2
import numpy as np

from ..errors import UsageError

Corner = Literal["top-right", "top-left", "bottom-right", "bottom-left"]
CORNERS: tuple[Corner, ...] = ("top-right", "top-left", "bottom-right", "bottom-left")
SHAPES = ("square", "circle", "rounded")
LAYOUTS = ("full", "pip", "slides")
BUSY_SHARE = 0.02  # a corner whose pixels differ from the page's background over this share holds content
BUSY_LEVEL = 28  # how far (0-255, max over channels) a pixel must differ to count


@dataclass(frozen=True)
class Pip:
    """Where and how the presenter box sits. `size` is the box's height as a share of the
    frame's; `aspect` its width / height (1: square). Paper2Video's default is
    Pip(position="top-right", size=1/6, margin=10)."""

    position: Corner = "top-right"
    size: float = 0.25
    shape: str = "rounded"
    border: int = 0  # px of a light border; 0: none
    margin: int = 16  # px from the frame's edges
    aspect: float = 1.0

    def __post_init__(self):
        if self.position not in CORNERS:
            raise UsageError(f"pip position must be one of {', '.join(CORNERS)}, got '{self.position}'")
        if self.shape not in SHAPES:
            raise UsageError(f"pip shape must be one of {', '.join(SHAPES)}, got '{self.shape}'")
        if not 0.05 <= self.size <= 0.6:
            raise UsageError(f"pip size is a share of the frame height from 0.05 to 0.6, got {self.size}")
        if not 0 <= self.border <= 20 or not 0 <= self.margin <= 200:
            raise UsageError("pip border must be 0-20 px and margin 0-200 px")

    def box_size(self, width: int, height: int, scale: float = 1.0) -> tuple[int, int]:
        """(w, h) of the box, even numbers (H.264 chroma), the same for every corner."""
        h = max(int(round(height * self.size * scale / 2)) * 2, 16)
        w = max(int(round(h * self.aspect / 2)) * 2, 16)
        return min(w, width - 2 * self.margin), min(h, height - 2 * self.margin)


def box_at(corner: Corner, width: int, height: int, box: tuple[int, int], margin: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of a w x h box in `corner` of a width x height frame."""
    w, h = box
    x = width - margin - w if corner.endswith("right") else margin
    y = margin if corner.startswith("top") else height - margin - h
    return x, y, w, h


def background_colour(frame: np.ndarray) -> np.ndarray:
    """The page's own background: the median of its outermost pixels."""
    edge = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    return np.median(edge, axis=0)


def busy_share(frame: np.ndarray, rect: tuple[int, int, int, int]) -> float:
    """The share of the rect's pixels that are content (far from the page's background)."""
    x, y, w, h = rect
    region = frame[y:y + h, x:x + w].astype(np.int16)
    far = np.abs(region - background_colour(frame).astype(np.int16)).max(axis=-1) > BUSY_LEVEL
    return float(far.mean()) if far.size else 0.0


@dataclass(frozen=True)
class Placement:
    rect: tuple[int, int, int, int]
    corner: Corner
    note: str = ""  # what was changed from the asked place, for --report; '' when nothing


def place(frame: np.ndarray, pip: Pip) -> Placement:
    """Where the presenter goes over this background: the asked corner if free, else the first
    free corner, else the asked corner smaller (down to half), else the asked corner as is."""
    height, width = frame.shape[:2]
    box = pip.box_size(width, height)
    order = (pip.position,) + tuple(c for c in CORNERS if c != pip.position)
    for corner in order:
        rect = box_at(corner, width, height, box, pip.margin)
        if busy_share(frame, rect) <= BUSY_SHARE:
            note = "" if corner == pip.position else f"moved to {corner}: content under {pip.position}"
            return Placement(rect, corner, note)
    for scale in (0.75, 0.5):
        small = pip.box_size(width, height, scale)
        for corner in order:
            rect = box_at(corner, width, height, small, pip.margin)
            if busy_share(frame, rect) <= BUSY_SHARE:
                return Placement(rect, corner, f"shrunk to {scale:.0%} at {corner}: every corner holds content")
    return Placement(box_at(pip.position, width, height, box, pip.margin), pip.position,
                     f"covers content at {pip.position}: no corner is free")


def shape_mask(w: int, h: int, shape: str) -> np.ndarray:
    """Float (h, w, 1) alpha of the box's shape, anti-aliased (drawn 4x, then shrunk)."""
    if shape == "square":
        return np.ones((h, w, 1), np.float32)
    if shape == "circle":
        return _ellipse(w, h)
    big = np.zeros((h * 4, w * 4), np.uint8)
    r = int(min(w, h) * 4 * 0.12)
    cv2.rectangle(big, (r, 0), (w * 4 - 1 - r, h * 4 - 1), 255, -1)
    cv2.rectangle(big, (0, r), (w * 4 - 1, h * 4 - 1 - r), 255, -1)
    for cx, cy in ((r, r), (w * 4 - 1 - r, r), (r, h * 4 - 1 - r), (w * 4 - 1 - r, h * 4 - 1 - r)):
        cv2.circle(big, (cx, cy), r, 255, -1, cv2.LINE_AA)
    return (cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)[..., None]


def _ellipse(w: int, h: int, clear: int = 2, samples: int = 4) -> np.ndarray:
    """The circle (an ellipse in a box that is not square) as the share of each pixel it
    covers (`samples` x `samples` points a pixel), centred on the box's true centre and
    ending `clear` px inside its edges. Drawn to the edge (as cv2's integer-centred ellipse
    was, half a pixel off-centre) it was cut flat by the box: a seam of half-covered pixels at
    the left and right edges, and 2 px keep the edge out of H.264's 2x2 chroma blocks."""
    a, b = max(w / 2 - clear, 1.0), max(h / 2 - clear, 1.0)
    xs = ((np.arange(w * samples) + 0.5) / samples - w / 2) / a
    ys = ((np.arange(h * samples) + 0.5) / samples - h / 2) / b
    inside = (xs[None, :] ** 2 + ys[:, None] ** 2 <= 1.0).astype(np.float32)
    return inside.reshape(h, samples, w, samples).mean(axis=(1, 3))[..., None]


def _border_ring(alpha: np.ndarray, border: int) -> np.ndarray:
    """The outer `border` px of the shape, as an alpha of its own."""
    if border <= 0:
        return np.zeros_like(alpha)
    inner = cv2.erode(alpha[..., 0], np.ones((2 * border + 1, 2 * border + 1), np.uint8))
    return np.clip(alpha[..., 0] - inner, 0, 1)[..., None]


class Composer:
    """Draws presenter frames into their box over background frames (RGB uint8), in place of
    a copy of the background. Masks are made once per box size."""

    BORDER_COLOUR = np.array([240, 240, 240], np.float32)

    def __init__(self, pip: Pip):
        self.pip = pip
        self._masks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _mask(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        if (w, h) not in self._masks:
            alpha = shape_mask(w, h, self.pip.shape)
            self._masks[(w, h)] = (alpha, _border_ring(alpha, self.pip.border))
        return self._masks[(w, h)]

    def compose(self, background: np.ndarray, presenter: np.ndarray,
                rect: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = rect
        if presenter.shape[:2] != (h, w):
            presenter = _cover(presenter, w, h)
        alpha, ring = self._mask(w, h)
        out = background.copy()
        under = out[y:y + h, x:x + w].astype(np.float32)
        face = presenter.astype(np.float32)
        face = face * (1 - ring) + self.BORDER_COLOUR * ring
        out[y:y + h, x:x + w] = (under * (1 - alpha) + face * alpha + 0.5).astype(np.uint8)
        return out


def _cover(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """The image scaled to cover w x h, centred, the overflow cut (the face stays in the middle)."""
    ih, iw = image.shape[:2]
    scale = max(w / iw, h / ih)
    size = (max(round(iw * scale), w), max(round(ih * scale), h))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    x0, y0 = (size[0] - w) // 2, (size[1] - h) // 2
    return resized[y0:y0 + h, x0:x0 + w]


class PipVisual:
    """A visual (render(t) -> RGB frame) of the presenter in a box over a background visual.
    The placement is decided once per distinct background picture (a slide), so the box does not
    wander while a slide is up; `notes` collects what was moved, for the report."""

    def __init__(self, background, presenter, pip: Pip,
                 on_note: Optional[Callable[[str], None]] = None):
        self.background, self.presenter, self.pip = background, presenter, pip
        self.width, self.height = background.width, background.height
        self.composer = Composer(pip)
        self.notes: list[str] = []
        self._on_note = on_note
        self._placements: dict[object, Placement] = {}

    @property
    def caption_margins(self) -> tuple[int, int] | None:
        """Burned captions keep to the free band: with the box in a bottom corner, as far from
        both sides as the box reaches in (centred text stays centred)."""
        return self.caption_margins_at("bottom")

    def caption_margins_at(self, position: str) -> tuple[int, int] | None:
        """The same for captions at the `position` top, middle or bottom: kept clear when the
        box is in a corner on their side (middle captions: whichever side, a big box reaches)."""
        if position != "middle" and not self.pip.position.startswith(position):
            return None
        reach = self.box()[0] + 2 * self.pip.margin
        return reach, reach

    def box(self) -> tuple[int, int]:
        """The presenter's size in this layout (what its stage should render)."""
        return self.pip.box_size(self.width, self.height)

    def placement(self, frame: np.ndarray, key: object) -> Placement:
        if key not in self._placements:
            found = place(frame, self.pip)
            self._placements[key] = found
            if found.note:
                note = f"page {key + 1}: {found.note}" if isinstance(key, int) else found.note
                self.notes.append(note)
                if self._on_note:
                    self._on_note(note)
        return self._placements[key]

    def render(self, t: float) -> np.ndarray:
        frame = self.background.render(t)
        key = getattr(self.background, "page_key", None)
        key = key(t) if callable(key) else "whole"  # a moving background: one place throughout
        rect = self.placement(frame, key).rect
        return self.composer.compose(frame, self.presenter.render(t), rect)
