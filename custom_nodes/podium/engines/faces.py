"""Finding faces in a still picture, with OpenCV alone (no torch, no ONNX Runtime), so the
torch-free orchestrator can check a profile's portraits and lip sync can share the detector.

YuNet (cv2.FaceDetectorYN over `face_detection_yunet_2023mar.onnx`, registry kind
`face-detector-onnx`) when it is installed, else OpenCV's shipped Haar cascade (4.x ships it).
"""
from __future__ import annotations

import os
from typing import Optional

import cv2
import numpy as np

DETECT_MAX_SIDE = 640  # pictures are shrunk to this for detection
Box = tuple[int, int, int, int]  # x1, y1, x2, y2


def haar_cascade_path() -> Optional[str]:
    """OpenCV's shipped frontal-face cascade, or None (OpenCV 5 ships neither it nor the class)."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = os.path.join(folder or "", "haarcascade_frontalface_default.xml")
    return path if folder and hasattr(cv2, "CascadeClassifier") and os.path.isfile(path) else None


def installed_face_detector_model() -> Optional[str]:
    """The first installed registry model of kind face-detector-onnx (YuNet), or None."""
    from ..errors import ModelMissingError
    from ..models import load_registry
    registry = load_registry()
    for entry in registry:
        if entry.kind == "face-detector-onnx":
            try:
                return str(registry.resolve(entry.id))
            except ModelMissingError:
                continue
    return None


def shrink(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """(the picture as BGR at most DETECT_MAX_SIDE on its long side, the scale used)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(rgb, (max(round(w * scale), 1), max(round(h * scale), 1)),
                       interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    return cv2.cvtColor(small, cv2.COLOR_RGB2BGR), scale


def haar_rects(classifier, bgr: np.ndarray, neighbours: int = 5) -> list:
    """(x, y, w, h) of each face the cascade finds (faces at least a tenth of the short side;
    more `neighbours`: fewer false faces, and fewer real ones)."""
    gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    min_side = max(24, min(gray.shape) // 10)
    return list(classifier.detectMultiScale(gray, 1.1, neighbours, minSize=(min_side, min_side)))


def yunet_rects(detector, bgr: np.ndarray) -> list:
    """(x, y, w, h) of each face a cv2.FaceDetectorYN finds."""
    detector.setInputSize((bgr.shape[1], bgr.shape[0]))
    faces = detector.detect(bgr)[1]
    return [] if faces is None else [tuple(f[:4]) for f in faces]


def find_faces(rgb: np.ndarray, yunet_path: Optional[str] = None) -> list[Box]:
    """Every face in an RGB picture, largest first; `yunet_path`: use YuNet, else Haar. Made
    for counting (one person in a portrait?), so stricter than lip sync's tracking: a false face
    would refuse a good picture. ValueError when neither detector is available."""
    bgr, scale = shrink(rgb)
    if yunet_path:
        rects = yunet_rects(cv2.FaceDetectorYN.create(yunet_path, "", (320, 320), 0.8, 0.3, 50), bgr)
    elif haar_cascade_path():
        rects = haar_rects(cv2.CascadeClassifier(haar_cascade_path()), bgr, neighbours=8)
    else:
        raise ValueError("no face detector: pull the ONNX face detector (podium models list shows it, "
                         "kind face-detector-onnx), or use opencv-python-headless<5, whose Haar "
                         "cascade is the fallback")
    boxes = [(int(x / scale), int(y / scale), int((x + w) / scale), int((y + h) / scale))
             for x, y, w, h in sorted(rects, key=lambda r: -r[2] * r[3])]
    return boxes
