"""The talking draft: the portrait's own mouth opens and shapes with the phonemes, on the CPU.

The face mesh (engines/face_mesh.py) is found once on the framed still. Every frame, the lower
face of the still is warped (the lower lip and jaw drop, the upper lip lifts a little, the lips
widen or round), the mouth's interior is drawn between the moved lips (a dark cavity, a hint of
upper teeth for open shapes) with a soft edge, the eyelids come down for blinks, and only then
does the portrait's idle motion (PortraitMotion's sway and nods) move the whole frame. The warp
fades to nothing at the edges of its region, so there is no seam, and outside the lower face and
the eyes the frame is exactly the motion without a mouth.

A portrait the mesh cannot use (no face, a face under MIN_FACE px, turned in profile, or cut by
the frame's edge) keeps the motion without a mouth, with one line saying why (`TalkingPortrait.note`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ..errors import PodiumError
from . import face_mesh as fm
from .speech import Speech
from .visemes import MouthTrack

log = logging.getLogger("podium.mouth")
MIN_FACE = 64  # px: the face's height (forehead to chin) below which no mouth is drawn
MAX_TURN = 0.22  # nose off the face's middle, as a share of its width: beyond it, a profile
DROP = 0.27  # the jaw's drop at a fully open mouth, as a share of the mouth's width
LIFT = 0.12  # the upper lip's lift, as a share of the drop
STRETCH = 0.10  # how much wider (or narrower, rounded) the lips get at width +-1
CAVITY = np.array([40, 16, 20], np.float32)  # the mouth's inside, RGB
TONGUE = np.array([120, 52, 58], np.float32)  # a hint of it at the bottom of a wide-open mouth
TEETH = np.array([222, 214, 200], np.float32)
BLINK_CLOSE, BLINK_OPEN = 0.07, 0.11  # seconds to close and to open again


def unusable(points: Optional[np.ndarray], width: int, height: int,
             box: Optional[tuple[int, int, int, int]] = None) -> Optional[str]:
    """Why a face mesh cannot carry a mouth, in a few words; None when it can. `box`: where the
    picture lies in the frame (its edges are where a face gets cut), default the whole frame."""
    if points is None:
        return "no face was found in the portrait"
    oval = points[list(fm.FACE_OVAL), :2]
    face_h = float(points[fm.CHIN, 1] - points[10, 1])
    face_w = float(oval[:, 0].max() - oval[:, 0].min())
    if min(face_h, face_w) < MIN_FACE:
        return f"the face is too small ({face_w:.0f}x{face_h:.0f} px, at least {MIN_FACE} needed)"
    x0, y0, x1, y1 = box or (0, 0, width, height)
    if (oval[:, 0] < x0 + 1).any() or (oval[:, 1] < y0 + 1).any() or (oval[:, 0] > x1 - 2).any() \
            or (oval[:, 1] > y1 - 2).any():
        return "the face is cut by the edge of the frame"
    middle = (oval[:, 0].max() + oval[:, 0].min()) / 2
    if abs(points[fm.NOSE_TIP, 0] - middle) > MAX_TURN * face_w:
        return "the face is turned too far from the camera (profile)"
    return None


def _cos2(x: np.ndarray) -> np.ndarray:
    """1 at 0, falling smoothly to 0 at |x| >= 1."""
    return np.cos(np.clip(np.abs(x), 0.0, 1.0) * (math.pi / 2)) ** 2


@dataclass
class _Region:
    x0: int
    y0: int
    x1: int
    y1: int

    def of(self, image: np.ndarray) -> np.ndarray:
        return image[self.y0:self.y1, self.x0:self.x1]


class MouthRig:
    """The lower face's warp fields, made once from the mesh; `apply(canvas, open, width, teeth)`
    draws that mouth into the canvas's lower-face region."""

    def __init__(self, points: np.ndarray, width: int, height: int):
        p = points[:, :2].astype(np.float32)
        left, right = p[fm.MOUTH_CORNERS[0]], p[fm.MOUTH_CORNERS[1]]
        self.mw = float(np.linalg.norm(right - left))
        self.cx = float((left[0] + right[0]) / 2)
        lower = p[list(fm.LOWER_LIP_INNER)]
        # The split is the lower lip's inner edge: what is above (the upper lip and any teeth the
        # portrait already shows) lifts, what is below drops, and the new gap opens between.
        order = np.argsort(lower[:, 0])
        self._mid_x, self._mid_y = lower[order, 0], lower[order, 1]
        self.lower = lower
        rest_gap = float(np.linalg.norm(p[fm.INNER_LIP_MID[1]] - p[fm.INNER_LIP_MID[0]]))
        self._own_teeth = min(rest_gap / (0.06 * self.mw), 1.0)  # a smile already shows them
        nose_y, chin_y = float(p[fm.NOSE_TIP, 1]), float(p[fm.CHIN, 1])
        lip_y = float(np.interp(self.cx, self._mid_x, self._mid_y))
        jaw = p[list(fm.JAW)]
        jaw_half = float(jaw[:, 0].max() - jaw[:, 0].min()) / 2
        fade = 0.5 * (chin_y - lip_y) + DROP * self.mw
        self.region = _Region(max(int(self.cx - jaw_half * 1.05), 0), max(int(nose_y), 0),
                              min(int(math.ceil(self.cx + jaw_half * 1.05)), width),
                              min(int(math.ceil(chin_y + fade + 2)), height))
        r = self.region
        ys, xs = np.mgrid[r.y0:r.y1, r.x0:r.x1].astype(np.float32)
        self._x, self._y = xs, ys
        line = np.interp(xs[0], self._mid_x, self._mid_y).astype(np.float32)[None, :]
        self._below = ys >= line
        bell = _cos2((xs - self.cx) / (0.5 * self.mw * 1.05))
        t = np.clip((ys - line) / max(chin_y - lip_y, 1.0), 0.0, 1.0)
        jaw_bell = _cos2((xs - self.cx) / (0.8 * jaw_half))
        under_chin = _cos2(np.clip(ys - chin_y, 0, None) / max(fade, 1.0))
        self._down = ((bell * (1 - t) + jaw_bell * t) * under_chin).astype(np.float32)
        self._up = (_cos2((xs - self.cx) / (0.6 * self.mw)) *
                    np.clip(1 - (line - ys) / max(lip_y - nose_y, 1.0), 0, 1) ** 2).astype(np.float32)
        self._side = ((xs - self.cx) * np.exp(-((xs - self.cx) / (0.9 * self.mw)) ** 2
                                               - ((ys - line) / (0.45 * self.mw)) ** 2)).astype(np.float32)
        self._lip_bell = lambda x: _cos2((x - self.cx) / (0.5 * self.mw * 1.05))
        # per unit of drop: below the split the pixel comes from higher up, above it from lower
        self._per_drop = np.where(self._below, -self._down, LIFT * self._up).astype(np.float32)

    def apply(self, canvas: np.ndarray, still: np.ndarray, open_: float, width: float, teeth: float) -> None:
        """Write the mouth (open 0..1, width -1..1, teeth 0..1) into canvas's region, from still."""
        r = self.region
        drop, stretch = DROP * self.mw * open_, STRETCH * width
        if drop < 0.05 and abs(stretch) < 0.005:
            r.of(canvas)[:] = r.of(still)
            return
        lift = LIFT * drop
        src_y = self._y + drop * self._per_drop
        src_x = self._x - stretch * self._side
        warped = cv2.remap(still, src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if drop >= 0.5:
            warped = self._interior(warped, drop, lift, stretch, teeth)
        r.of(canvas)[:] = warped

    def _interior(self, crop: np.ndarray, drop: float, lift: float, stretch: float, teeth: float) -> np.ndarray:
        """The cavity between the moved inner lips, with the upper teeth's edge, blended softly
        (worked out in the cavity's own bounding box only)."""
        r = self.region

        def moved(points: np.ndarray, dy: float) -> np.ndarray:
            bell = self._lip_bell(points[:, 0])
            x = points[:, 0] + stretch * (points[:, 0] - self.cx) * 0.8
            return np.stack([x - r.x0, points[:, 1] + dy * bell - r.y0], axis=1)

        top, bottom = moved(self.lower, -lift), moved(self.lower, drop)
        ring = np.concatenate([top, bottom[::-1]])
        x0, y0 = np.maximum(np.floor(ring.min(0)).astype(int) - 3, 0)
        x1, y1 = np.minimum(np.ceil(ring.max(0)).astype(int) + 4, (crop.shape[1], crop.shape[0]))
        if x1 <= x0 or y1 <= y0:
            return crop
        at = np.array([x0, y0], np.float32)
        shape = (y1 - y0, x1 - x0)
        cavity = _mask(ring - at, shape)
        gap = drop + lift
        floor = float(bottom[:, 1].max()) - y0  # the moved lower lip's lowest inner point
        tongue = np.clip((np.arange(shape[0], dtype=np.float32) - floor + 0.4 * gap) / max(0.4 * gap, 1.0), 0, 1)
        fill = np.broadcast_to(CAVITY + (TONGUE - CAVITY) * tongue[:, None, None] * 0.6, (*shape, 3))
        teeth *= 1.0 - self._own_teeth
        if teeth > 0.05:
            depth = teeth * min(0.5 * gap, 0.13 * self.mw)
            edge = top.copy()
            edge[:, 1] += depth * self._lip_bell(self.lower[:, 0]) ** 0.5
            tooth = (_mask(np.concatenate([top, edge[::-1]]) - at, shape) * cavity)[..., None]
            fill = tooth * TEETH * 0.92 + (1 - tooth) * fill
        alpha = (cavity * min(drop / 1.5, 1.0))[..., None]
        box = crop[y0:y1, x0:x1].astype(np.float32)
        crop[y0:y1, x0:x1] = np.clip(box * (1 - alpha) + fill * alpha + 0.5, 0, 255).astype(np.uint8)
        return crop


def _mask(polygon: np.ndarray, shape) -> np.ndarray:
    """A soft-edged (anti-aliased, lightly blurred) mask of a polygon, 0..1."""
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), 0.8).astype(np.float32) / 255.0


class EyeRig:
    """One eye's blink: the upper lid slides down to the lower one, its skin stretched with it."""

    def __init__(self, points: np.ndarray, corners, upper, lower, width: int, height: int):
        p = points[:, :2].astype(np.float32)
        up = np.concatenate([p[[corners[0]]], p[list(upper)], p[[corners[1]]]])
        low = np.concatenate([p[[corners[0]]], p[list(lower)], p[[corners[1]]]])
        up, low = up[np.argsort(up[:, 0])], low[np.argsort(low[:, 0])]
        eye_w = float(up[:, 0].max() - up[:, 0].min())
        skin = 0.45 * eye_w
        x0, x1 = int(up[:, 0].min()) - 1, int(math.ceil(up[:, 0].max())) + 2
        y0, y1 = int(up[:, 1].min() - skin) - 1, int(math.ceil(low[:, 1].max())) + 2
        self.region = _Region(max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
        r = self.region
        ys, xs = np.mgrid[r.y0:r.y1, r.x0:r.x1].astype(np.float32)
        self._x, self._y = xs, ys
        self._top = np.interp(xs[0], up[:, 0], up[:, 1] - skin).astype(np.float32)[None, :]
        self._upper = np.interp(xs[0], up[:, 0], up[:, 1]).astype(np.float32)[None, :]
        self._lower = np.interp(xs[0], low[:, 0], low[:, 1]).astype(np.float32)[None, :]

    def apply(self, canvas: np.ndarray, still: np.ndarray, closed: float) -> None:
        r = self.region
        if closed <= 0.01:
            r.of(canvas)[:] = r.of(still)
            return
        lid = self._upper + closed * np.maximum(self._lower - self._upper, 0) * 0.95
        span = np.maximum(lid - self._top, 1e-3)
        stretched = self._top + (self._y - self._top) * (self._upper - self._top) / span
        src_y = np.where((self._y >= self._top) & (self._y < lid), stretched, self._y).astype(np.float32)
        r.of(canvas)[:] = cv2.remap(still, self._x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def blink_times(duration: float, seed: int = 0) -> np.ndarray:
    """When blinks start: every 2.5-5.5 s, the first after 1.2 s."""
    rng, times, t = np.random.default_rng(seed), [], 1.2
    while t < duration:
        times.append(t)
        t += rng.uniform(2.5, 5.5)
    return np.asarray(times, np.float32)


def blink_amount(t: float, starts: np.ndarray) -> float:
    """How closed the eyes are at t (0 open .. 1 shut)."""
    i = int(np.searchsorted(starts, t, side="right")) - 1
    if i < 0:
        return 0.0
    dt = t - float(starts[i])
    if dt < BLINK_CLOSE:
        return dt / BLINK_CLOSE
    if dt < BLINK_CLOSE + BLINK_OPEN:
        return 1.0 - (dt - BLINK_CLOSE) / BLINK_OPEN
    return 0.0


class TalkingPortrait:
    """A Visual: PortraitMotion whose still talks (mouth from the phonemes) and blinks.
    Where the face cannot carry a mouth, it is the motion alone and `note` says why."""

    def __init__(self, motion, speech: Speech, mesh=None, strength: float = 1.0, blinks: bool = True):
        if not hasattr(motion, "still") or not hasattr(motion, "move"):
            raise PodiumError("the talking mouth needs a portrait visual (PodiumPresenter with a portrait)")
        self.motion, self.width, self.height = motion, motion.width, motion.height
        self.still = np.ascontiguousarray(motion.still)
        self.strength, self.note = float(strength), None
        self.track = MouthTrack(speech)
        self._blinks = blink_times(speech.duration) if blinks else np.zeros(0, np.float32)
        points = mesh.landmarks(self.still) if mesh is not None else None
        box = getattr(motion, "portrait_box", None)
        why = unusable(points, self.width, self.height, box) if mesh is not None else "no face mesh"
        self.points = points
        if why:
            self.note = f"no talking mouth: {why}; the portrait keeps its motion without one"
            self.mouth, self.eyes = None, []
            return
        self.mouth = MouthRig(points, self.width, self.height)
        self.eyes = [EyeRig(points, fm.RIGHT_EYE_CORNERS, fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER,
                            self.width, self.height),
                     EyeRig(points, fm.LEFT_EYE_CORNERS, fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER,
                            self.width, self.height)]
        self._canvas = self.still.copy()

    def face(self, t: float) -> np.ndarray:
        """The still with the mouth and eyelids of time t, before the idle motion."""
        if self.mouth is None:
            return self.still
        open_, width, teeth = self.track.at(t)
        self.mouth.apply(self._canvas, self.still, open_ * self.strength, width * self.strength, teeth)
        closed = blink_amount(t, self._blinks)
        for eye in self.eyes:
            eye.apply(self._canvas, self.still, closed)
        return self._canvas

    def render(self, t: float) -> np.ndarray:
        return self.motion.move(self.face(t), t)
