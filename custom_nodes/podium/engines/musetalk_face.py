"""Where MuseTalk 1.5 looks and what it may repaint: the crop box and the paste mask, both from
face landmarks, as the model was trained and is run upstream.

Upstream facts (TMElyralab/MuseTalk: utils/preprocessing.get_landmark_and_bbox, scripts/inference.py,
utils/blending.get_image, utils/face_parsing in "jaw" mode, the v1.5 defaults):
- crop: from 68 landmarks (iBUG order). The box spans their x range; its vertical centre is point
  29 (the nose ridge just above the tip; bbox_shift is fixed at 0 for v1.5), its bottom the lowest
  landmark (the chin), its top as far above point 29 as the chin is below it; v1.5 then adds
  extra_margin = 10 px below. The box is resized to 256x256 whatever its aspect, and the UNet
  redraws the lower half: from the nose to the chin.
- paste: a face-parsing map's skin, dilated (a cone kernel) and eroded at the cheeks, minus the
  nose, plus the lips; kept below the middle row; Gaussian-blurred with a kernel 5% of the box
  enlarged 1.5x; the generated crop goes into the box through it.

Here the landmarks are MediaPipe's 468-point mesh (engines/face_mesh.py): iBUG 29 ~ mesh 5, the
chin iBUG 8 ~ mesh 152, the jaw = the face oval from ear to ear. Without the mesh, YuNet's five
points (eyes, nose tip, mouth corners) or a bare detector box give a ridge, chin and jaw from
average face proportions. The paste mask is the face below the jaw line (the parsing map's skin
and lips), cheeks pulled in from the outline (the background stays), the lower nose cut out,
blurred as upstream, and faded to zero at the box's border (no seam on the collar).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from ..errors import PodiumError
from .face_mesh import JAW  # the face oval from ear to ear under the chin (152, iBUG 8)
from .lipsync import Box

RIDGE = 5  # mesh point of iBUG 29: the crop's vertical centre
# The lower nose (alae, tip, nostrils, columella) as mesh points; their hull is never repainted.
NOSE = (5, 4, 1, 19, 94, 2, 97, 326, 98, 327, 64, 294, 129, 358, 48, 278, 102, 331, 115, 344)
EXTRA_MARGIN = 10  # px below the chin, MuseTalk 1.5's default (the node's pad_bottom)
CHEEK_BAND = 0.26  # of the box width each side of the centre: kept whole (upstream: 90 / 512 * 1.5)
CHEEK_TRIM = 0.10  # of the box width: the outline pulled in beyond the band (upstream: 2 x 17 / 512 * 1.5)
CHIN_DROP = 0.02  # of the box height: the jaw line extended downwards (the opened mouth's chin)
BLUR = 0.075  # Gaussian kernel, of the box's longer side (upstream: 5% of the 1.5x box)
JAW_POINTS = 21  # points on an estimated jaw line
SHAPE_CACHE = 64  # shapes kept by frame content (a still portrait or a looped clip repeats frames)


@dataclass(frozen=True)
class FaceShape:
    """What the crop and the mask need, in frame pixels: the ridge point (iBUG 29), the jaw line
    from ear to ear through the chin, and points of the lower nose."""

    ridge: np.ndarray  # (2,)
    jaw: np.ndarray  # (n, 2)
    nose: np.ndarray  # (m, 2)

    @staticmethod
    def mean(shapes: Sequence["FaceShape"]) -> "FaceShape":
        return FaceShape(*(np.mean([getattr(s, f) for s in shapes], axis=0)
                           for f in ("ridge", "jaw", "nose")))


def shape_from_mesh(points: np.ndarray) -> FaceShape:
    """The shape from MediaPipe's (468, 2 or 3) mesh in pixels."""
    points = np.asarray(points, np.float32)[:, :2]
    return FaceShape(points[RIDGE], points[list(JAW)], points[list(NOSE)])


def shape_from_five(five: np.ndarray) -> FaceShape:
    """An estimated shape from YuNet's five points (two eyes, nose tip, two mouth corners):
    ridge two thirds down from the eyes to the tip, chin 0.55 eye-to-mouth below the mouth,
    jaw a half ellipse as wide as 2.2 eye distances (measured on MediaPipe meshes of real faces)."""
    five = np.asarray(five, np.float32)[:, :2]
    eyes, tip, mouth = five[:2].mean(0), five[2], five[3:5].mean(0)
    down = mouth - eyes
    length = max(float(np.hypot(*down)), 1.0)
    down = down / length
    across = np.array([-down[1], down[0]], np.float32)  # image right for an upright face
    if across @ (five[1] - five[0]) < 0:  # the eyes' order says which way right is
        across = -across
    ipd = max(float(np.hypot(*(five[1] - five[0]))), 1.0)
    ridge = eyes + 2 / 3 * float((tip - eyes) @ down) * down
    chin = mouth + 0.55 * length * down
    depth, half = float((chin - ridge) @ down), 1.1 * ipd
    angle = np.linspace(0, np.pi, JAW_POINTS, dtype=np.float32)[:, None]
    jaw = ridge + half * np.cos(angle) * across + depth * np.sin(angle) * down
    subnasale = tip + 0.08 * length * down
    nose = np.stack([ridge, tip + 0.29 * ipd * across, subnasale + 0.2 * ipd * across, subnasale,
                     subnasale - 0.2 * ipd * across, tip - 0.29 * ipd * across])
    return FaceShape(ridge.astype(np.float32), jaw.astype(np.float32), nose.astype(np.float32))


def five_in_box(box: Box) -> np.ndarray:
    """Where a face detector's box (brows or forehead to chin) has the five points on average."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    rel = np.array([[0.3, 0.38], [0.7, 0.38], [0.5, 0.63], [0.38, 0.8], [0.62, 0.8]], np.float32)
    return rel * np.array([w, h], np.float32) + np.array([x1, y1], np.float32)


def crop_box(shape: FaceShape, pads: Sequence[int], width: int, height: int) -> Optional[Box]:
    """MuseTalk 1.5's crop: landmark x range; ridge at the vertical centre; chin at the bottom;
    then pads (top, bottom, left, right; bottom 10 = upstream's extra_margin), inside the frame.
    None when nothing of the face is left."""
    top, bottom, left, right = pads
    points = np.concatenate([shape.jaw, shape.ridge[None]])
    chin, ridge = float(points[:, 1].max()), float(shape.ridge[1])
    y1 = ridge - (chin - ridge) - top
    x1, x2 = float(points[:, 0].min()) - left, float(points[:, 0].max()) + right
    box = (max(0, int(round(x1))), max(0, int(round(y1))),
           min(width, int(round(x2))), min(height, int(round(chin + bottom))))
    return box if box[2] - box[0] >= 8 and box[3] - box[1] >= 8 else None


def _odd(n: float) -> int:
    return int(n) // 2 * 2 + 1


def paste_mask(shape: FaceShape, box: Box) -> np.ndarray:
    """(h, w) weights in [0, 1] of the generated face over the box: the face below the jaw line
    and under the box's middle row, nose cut out, cheeks pulled in from the outline, blurred,
    zero on the box's border."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    origin = np.array([x1, y1], np.float32)
    region = np.zeros((h, w), np.uint8)
    cv2.fillPoly(region, [np.rint(shape.jaw - origin).astype(np.int32)], 255)
    drop = max(int(round(CHIN_DROP * h)), 1)
    region = cv2.dilate(region, np.ones((drop + 1, 1), np.uint8), anchor=(0, drop))
    trim = max(int(round(CHEEK_TRIM * w)), 1)
    trimmed = cv2.erode(region, np.ones((1, 2 * trim + 1), np.uint8),  # outside the box: no face
                        borderType=cv2.BORDER_CONSTANT, borderValue=0)
    centre = float(shape.ridge[0] - x1)
    band = np.abs(np.arange(w) + 0.5 - centre) <= CHEEK_BAND * w
    region = np.where(band[None, :], region, trimmed)
    cv2.fillConvexPoly(region, cv2.convexHull(np.rint(shape.nose - origin).astype(np.int32)), 0)
    region[: h // 2] = 0  # upstream keeps the lower half of the box only
    k = _odd(BLUR * max(w, h))
    mask = cv2.GaussianBlur(region.astype(np.float32) / 255.0, (k, k), 0)
    return np.clip(mask, 0.0, 1.0) * _border_fade(h, w, max(k // 2, 1))  # blur rounds past 1


def _border_fade(h: int, w: int, width: int) -> np.ndarray:
    """1 inside, falling linearly to 0 at the box's outermost pixels over `width` px."""
    ramp = lambda n: np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / width, 0, 1)
    return (ramp(h)[:, None] * ramp(w)[None, :]).astype(np.float32)


@dataclass(frozen=True)
class Face:
    """A tracked face: MuseTalk's crop box and the paste mask over it."""

    box: Box
    shape: FaceShape

    def mask(self) -> np.ndarray:
        return paste_mask(self.shape, self.box)


class FaceFraming:
    """Faces for frames pulled in order, framed as MuseTalk 1.5 was trained: `faces(frames,
    first)` gives a Face or None (no face: the frame passes through) per frame. The shape comes
    from `locate(rgb) -> FaceShape | None`, once per distinct frame (a still portrait is located
    once); shapes are averaged over `smooth_frames` frames."""

    def __init__(self, width: int, height: int, locate: Callable[[np.ndarray], Optional[FaceShape]],
                 pads: Sequence[int] = (0, EXTRA_MARGIN, 0, 0), smooth_frames: int = 5):
        if len(pads) != 4:
            raise PodiumError("lip sync needs four pads (top, bottom, left, right)")
        self.width, self.height, self.locate = width, height, locate
        self.pads = tuple(int(p) for p in pads)
        self.smooth_frames = max(int(smooth_frames), 1)
        self._history: deque = deque(maxlen=self.smooth_frames // 2)  # shapes before the batch
        self._next_index = 0
        self._shapes: "OrderedDict[bytes, Optional[FaceShape]]" = OrderedDict()

    def _locate(self, rgb: np.ndarray) -> Optional[FaceShape]:
        key = hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16).digest()
        if key not in self._shapes:
            self._shapes[key] = self.locate(rgb)
            while len(self._shapes) > SHAPE_CACHE:
                self._shapes.popitem(last=False)
        self._shapes.move_to_end(key)
        return self._shapes[key]

    def boxes(self, frames: list[np.ndarray], first: int) -> list[Optional[Face]]:
        """The faces of consecutive `frames` starting at index `first` (FaceTrack's interface)."""
        if first != self._next_index:  # a jump: earlier shapes say nothing about these frames
            self._history.clear()
        self._next_index = first + len(frames)
        raw = [self._locate(f) for f in frames]
        seq, half = list(self._history) + raw, self.smooth_frames // 2
        faces = []
        for k in range(len(self._history), len(seq)):
            near = [s for s in seq[max(0, k - half):k + half + 1] if s is not None]
            shape = None if seq[k] is None else FaceShape.mean(near)
            box = None if shape is None else crop_box(shape, self.pads, self.width, self.height)
            faces.append(None if box is None else Face(box, shape))
        self._history.extend(raw)
        return faces


def box_locator(box: Box) -> Callable[[np.ndarray], FaceShape]:
    """A fixed face box (the face, brows to chin), framed from average proportions."""
    shape = shape_from_five(five_in_box(box))
    return lambda rgb: shape


def mesh_locator(mesh) -> Callable[[np.ndarray], Optional[FaceShape]]:
    """Shapes from a FaceMesh (`landmarks(rgb) -> (468, 3) | None`)."""
    def locate(rgb):
        points = mesh.landmarks(rgb)
        return None if points is None else shape_from_mesh(points)
    return locate


def detector_locator(detector) -> Callable[[np.ndarray], Optional[FaceShape]]:
    """Shapes from lipsync.FaceDetector: YuNet's five points, or Haar's box alone."""
    def locate(rgb):
        box, five = detector.detect_with_points(rgb)
        if box is None:
            return None
        return shape_from_five(five if five is not None else five_in_box(box))
    return locate
