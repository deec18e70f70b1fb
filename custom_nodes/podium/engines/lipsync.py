"""Lip sync: Wav2Lip run with ONNX Runtime over any Visual, frame-accurate at any fps.

The mel spectrogram is Wav2Lip's own (its audio.py and hparams, in numpy); the window for
video frame i starts at mel column int(80 * i / fps), so 24, 25 and 30 fps all stay in sync.
Faces are found by YuNet (cv2.FaceDetectorYN, the model `face_detection_yunet_2023mar.onnx`,
registry kind `face-detector-onnx`) when it is installed, else by OpenCV's shipped Haar
cascade (OpenCV 4.x ships it; 5.x does not), or given once as a fixed `face_box`.
Boxes are padded, then averaged over `smooth_frames` frames; a frame with no face passes
through unchanged. No torch here: the network is the exported .onnx.
"""
from __future__ import annotations

import os
from collections import deque
from typing import Callable, Optional, Sequence, Union

import cv2
import numpy as np

from ..errors import PodiumError
from ..memory import get_manager
from .faces import DETECT_MAX_SIDE, haar_cascade_path, installed_face_detector_model
from .output import frames_for
from .speech import Speech, resample
from .frames import Visual

# Wav2Lip's hparams.py
SAMPLE_RATE, N_FFT, HOP, WIN, N_MELS = 16000, 800, 200, 800, 80
FMIN, FMAX, PREEMPHASIS = 55.0, 7600.0, 0.97
REF_LEVEL_DB, MIN_LEVEL_DB, MAX_ABS = 20.0, -100.0, 4.0
MEL_FPS = SAMPLE_RATE / HOP  # 80 mel columns per second
MEL_STEP = 16  # columns per window: 0.2 s
Box = tuple[int, int, int, int]  # x1, y1, x2, y2


def _hz_to_mel(f):  # Slaney's scale, as librosa's default (htk=False)
    f = np.asarray(f, np.float64)
    linear = f / (200.0 / 3)
    log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log, linear)


def _mel_to_hz(m):
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * 200.0 / 3)


def mel_filterbank() -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600): (80, 401)."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    ramps = mel_f[:, None] - fft_freqs[None, :]
    fdiff = np.diff(mel_f)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]  # Slaney area normalisation


def mel_spectrogram(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Wav2Lip's `audio.melspectrogram` at 16 kHz: (80, 1 + n // 200) float32 in [-4, 4]."""
    wav = resample(samples, sample_rate, SAMPLE_RATE).astype(np.float64)
    wav = np.concatenate([wav[:1], wav[1:] - PREEMPHASIS * wav[:-1]])  # lfilter([1, -k], [1])
    if len(wav) < 2:
        wav = np.zeros(2)
    padded = np.pad(wav, N_FFT // 2, mode="reflect")  # librosa.stft(center=True), 0.7's reflect
    n_frames = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)  # periodic Hann
    magnitude = np.abs(np.fft.rfft(padded[idx] * window, axis=1)).T  # (401, frames)
    mel = mel_filterbank() @ magnitude
    db = 20 * np.log10(np.maximum(10 ** (MIN_LEVEL_DB / 20), mel)) - REF_LEVEL_DB
    norm = 2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS
    return np.clip(norm, -MAX_ABS, MAX_ABS).astype(np.float32)


def mel_window(mel: np.ndarray, frame_index: int, fps: float) -> np.ndarray:
    """The (80, 16) window for video frame `frame_index`: it starts at the frame's time,
    column int(80 * i / fps); past the end it is padded with silence (-4)."""
    start = int(MEL_FPS * frame_index / fps)
    window = mel[:, start:start + MEL_STEP]
    if window.shape[1] < MEL_STEP:
        pad = np.full((mel.shape[0], MEL_STEP - window.shape[1]), -MAX_ABS, np.float32)
        window = np.concatenate([window, pad], axis=1)
    return window


# ---- face detection --------------------------------------------------------------------

class FaceDetector:
    """`detect(rgb) -> (x1, y1, x2, y2) | None`: the largest face, YuNet or Haar."""

    def __init__(self, kind: str = "auto", yunet_path: Optional[str] = None):
        if kind not in ("auto", "haar", "yunet"):
            raise PodiumError(f"face_detector must be auto, haar or yunet, not {kind!r}")
        if kind != "haar":
            yunet_path = yunet_path or installed_face_detector_model()
        if kind == "yunet" and not yunet_path:
            raise PodiumError("the ONNX face detector (kind face-detector-onnx) is not installed: "
                              "pull it (podium models list shows it) or use auto / haar")
        self._yunet_path = yunet_path if kind != "haar" else None
        self.kind = "yunet" if self._yunet_path else "haar"
        if self.kind == "yunet":
            get_manager().load(f"yunet:{self._yunet_path}", self._yunet, kind="onnx",
                               size_bytes=os.path.getsize(self._yunet_path), stage="lipsync")
        elif haar_cascade_path() is None:
            raise PodiumError(
                "no face detector: pull the ONNX face detector (podium models list shows it, "
                "kind face-detector-onnx), or use opencv-python-headless<5, whose Haar cascade is "
                "the fallback, or give a fixed face_box (x1,y1,x2,y2)")
        else:
            self._haar = cv2.CascadeClassifier(haar_cascade_path())

    def _yunet(self):
        return cv2.FaceDetectorYN.create(self._yunet_path, "", (320, 320), 0.6, 0.3, 50)

    def detect(self, rgb: np.ndarray) -> Optional[Box]:
        return self.detect_with_points(rgb)[0]

    def detect_with_points(self, rgb: np.ndarray) -> tuple[Optional[Box], Optional[np.ndarray]]:
        """The largest face's box and, from YuNet, its five points (5, 2) in pixels: the eyes,
        the nose tip, the mouth corners (None from Haar)."""
        h, w = rgb.shape[:2]
        scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
        small = cv2.resize(rgb, (max(round(w * scale), 1), max(round(h * scale), 1)),
                           interpolation=cv2.INTER_AREA) if scale < 1 else rgb
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        if self.kind == "yunet":
            detector = get_manager().load(f"yunet:{self._yunet_path}", self._yunet, kind="onnx",
                                          size_bytes=os.path.getsize(self._yunet_path))
            detector.setInputSize((bgr.shape[1], bgr.shape[0]))
            faces = detector.detect(bgr)[1]
            found = [] if faces is None else [(tuple(f[:4]), f[4:14].reshape(5, 2)) for f in faces]
        else:
            gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
            min_side = max(24, min(gray.shape) // 10)
            found = [(tuple(r), None) for r in
                     self._haar.detectMultiScale(gray, 1.1, 5, minSize=(min_side, min_side))]
        if not found:
            return None, None
        (x, y, bw, bh), points = max(found, key=lambda f: f[0][2] * f[0][3])
        box = (int(x / scale), int(y / scale), int((x + bw) / scale), int((y + bh) / scale))
        return box, None if points is None else np.asarray(points, np.float32) / scale


def pad_box(box: Box, pads: Sequence[int], width: int, height: int) -> Box:
    """Wav2Lip's pads (top, bottom, left, right), clipped to the frame."""
    top, bottom, left, right = pads
    x1, y1, x2, y2 = box
    return (max(0, x1 - left), max(0, y1 - top), min(width, x2 + right), min(height, y2 + bottom))


# ---- Wav2Lip ---------------------------------------------------------------------------

def wav2lip_io(session) -> tuple[str, str, int, bool]:
    """(mel input, face input, face size, dynamic batch) of a Wav2Lip .onnx, by shape: any
    naming works (mel_spectrogram/video_frames, FaceFusion's source/target, ...)."""
    mel = face = None
    size, dynamic = 96, True
    for inp in session.get_inputs():
        shape = list(inp.shape)
        if len(shape) == 4 and shape[1] == 6:
            face, dynamic = inp.name, not isinstance(shape[0], int) or shape[0] != 1
            size = shape[2] if isinstance(shape[2], int) else 96
        elif len(shape) == 4 and shape[1] == 1:
            mel = inp.name
    if mel is None or face is None:
        found = [(i.name, i.shape) for i in session.get_inputs()]
        raise PodiumError(f"not a Wav2Lip ONNX model: expected inputs (B,1,80,16) and "
                          f"(B,6,S,S), found {found}")
    return mel, face, size, dynamic


def load_wav2lip(path: Union[str, os.PathLike]):
    """The Wav2Lip session through the memory manager (CUDA when available, counted)."""
    path = str(path)
    if not os.path.isfile(path):
        raise PodiumError(f"Wav2Lip model not found: {path}")
    session = get_manager().load_onnx(f"wav2lip:{os.path.abspath(path)}", path, stage="lipsync")
    wav2lip_io(session)
    return session


def _blend_mask(h: int, w: int) -> np.ndarray:
    """Weight of the generated face: the lower face (mouth, jaw), feathered at the edges;
    0 over the eyes so they stay sharp, 0 on the box's border so there is no seam."""
    y = (np.arange(h) + 0.5) / h
    x = (np.arange(w) + 0.5) / w
    vertical = np.clip((y - 0.4) / 0.15, 0, 1) * np.clip((1 - y) / 0.1, 0, 1)
    horizontal = np.clip(x / 0.12, 0, 1) * np.clip((1 - x) / 0.12, 0, 1)
    mask = vertical[:, None] * horizontal[None, :]
    return (mask * mask * (3 - 2 * mask))[..., None].astype(np.float32)  # smoothstep


def paste_face(frame: np.ndarray, rgb: np.ndarray, box: Box, strength: float = 1.0,
               mask: Optional[np.ndarray] = None) -> np.ndarray:
    """`frame` with the generated face `rgb` (any size, RGB, 0-255) blended into `box` through
    `mask` (box-sized weights in [0, 1]; default the feathered lower-face box), scaled by
    `strength` (0: the frame itself)."""
    x1, y1, x2, y2 = box
    rgb = np.clip(np.asarray(rgb, np.float32), 0, 255)
    rgb = cv2.resize(rgb, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    region = frame[y1:y2, x1:x2].astype(np.float32)
    weight = _blend_mask(y2 - y1, x2 - x1) if mask is None else \
        np.asarray(mask, np.float32).reshape(y2 - y1, x2 - x1, 1)
    blended = region + (strength * weight) * (rgb - region)
    out = frame.copy()
    out[y1:y2, x1:x2] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return out


class FaceTrack:
    """Face boxes for frames pulled in order: detected (YuNet / Haar), padded by `pads` (top,
    bottom, left, right), averaged over `smooth_frames`; or one fixed `face_box`. `boxes()`
    returns None for a frame without a face (it passes through)."""

    def __init__(self, width: int, height: int, pads: Sequence[int] = (0, 10, 0, 0),
                 smooth_frames: int = 5, face_detector: str = "auto",
                 face_box: Optional[Box] = None, yunet_path: Optional[str] = None):
        if len(pads) != 4:
            raise PodiumError("lip sync needs four pads (top, bottom, left, right)")
        self.width, self.height = width, height
        self.pads = tuple(int(p) for p in pads)
        self.smooth_frames = max(int(smooth_frames), 1)
        self.face_box = self._check_box(face_box) if face_box is not None else None
        self.detector = None if face_box is not None else FaceDetector(face_detector, yunet_path)
        self._history: deque = deque(maxlen=self.smooth_frames // 2)  # raw boxes before the batch
        self._next_index = 0

    def _check_box(self, box) -> Box:
        x1, y1, x2, y2 = (int(v) for v in box)
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(self.width, x2), min(self.height, y2)
        if x2 - x1 < 8 or y2 - y1 < 8:
            raise PodiumError(f"face_box {tuple(box)} is not a box inside the "
                              f"{self.width}x{self.height} frame (x1,y1,x2,y2)")
        return x1, y1, x2, y2

    def boxes(self, frames: list[np.ndarray], first: int) -> list[Optional[Box]]:
        """Boxes of `frames`, consecutive frames starting at index `first`."""
        if self.face_box is not None:
            return [self.face_box] * len(frames)
        if first != self._next_index:  # a jump: earlier boxes say nothing about these frames
            self._history.clear()
        self._next_index = first + len(frames)
        raw = [self.detector.detect(f) for f in frames]
        raw = [pad_box(b, self.pads, self.width, self.height) if b else None for b in raw]
        seq, half = list(self._history) + raw, self.smooth_frames // 2
        boxes = []
        for k in range(len(self._history), len(seq)):
            near = [b for b in seq[max(0, k - half):k + half + 1] if b is not None]
            boxes.append(None if seq[k] is None else tuple(int(round(v)) for v in np.mean(near, 0)))
        self._history.extend(raw)
        return [b if b and b[2] - b[0] >= 8 and b[3] - b[1] >= 8 else None for b in boxes]


class FaceSyncVisual:
    """What every lip sync shares: a Visual over `base` whose frames are made in batches of
    `batch_size` as render(t) is called in order (only the current batch is kept, so memory
    stays flat), one per frame of `fps` for the speech's length, faces tracked by FaceTrack.
    Subclasses say how a batch's faces are redrawn (`_sync`)."""

    def __init__(self, base: Visual, speech: Speech, fps: float, pads: Sequence[int],
                 smooth_frames: int, batch_size: int, face_detector: str,
                 face_box: Optional[Box], yunet_path: Optional[str]):
        if fps <= 0 or batch_size < 1 or len(pads) != 4:
            raise PodiumError("lip sync needs fps > 0, batch_size >= 1 and four pads")
        self.base, self.width, self.height = base, base.width, base.height
        self.fps, self.batch_size = float(fps), int(batch_size)
        self.n_frames = frames_for(speech.duration, fps)
        self.track = FaceTrack(self.width, self.height, pads, smooth_frames, face_detector,
                               face_box, yunet_path)
        self._frames: dict[int, np.ndarray] = {}

    def render(self, t: float) -> np.ndarray:
        index = max(int(round(t * self.fps)), 0)
        if index not in self._frames:
            self._render_batch(index)
        return self._frames[index]

    def _render_batch(self, first: int) -> None:
        self._frames = {}  # one batch held at a time
        indices = range(first, max(first + 1, min(first + self.batch_size, self.n_frames)))
        frames = [self.base.render(i / self.fps) for i in indices]
        boxes = self.track.boxes(frames, first)
        todo = [k for k, b in enumerate(boxes) if b is not None]
        results = list(frames)
        if todo:
            synced = self._sync([frames[k] for k in todo], [boxes[k] for k in todo],
                                [indices[k] for k in todo])
            for k, frame in zip(todo, synced):
                results[k] = frame
        self._frames = dict(zip(indices, results))

    def _sync(self, frames: list[np.ndarray], boxes: list[Box], indices: list[int]) -> list[np.ndarray]:
        """The frames (video frame numbers `indices`) with their faces in `boxes` redrawn."""
        raise NotImplementedError


class LipSyncVisual(FaceSyncVisual):
    """A Visual whose mouth follows the speech (Wav2Lip). Frames are rendered in batches of
    `batch_size` as render(t) is called in order; only the current batch is kept.

    `fps` must be the rate the frames are pulled at (the Save node's fps). `session` is an
    onnxruntime session or a callable returning one (asked again per batch, so the memory
    manager may evict it between runs). `face_box` (x1, y1, x2, y2) skips detection.
    """

    def __init__(self, base: Visual, speech: Speech, session, fps: float,
                 pads: Sequence[int] = (0, 10, 0, 0), smooth_frames: int = 5,
                 batch_size: int = 16, face_detector: str = "auto",
                 face_box: Optional[Box] = None, yunet_path: Optional[str] = None):
        super().__init__(base, speech, fps, pads, smooth_frames, batch_size, face_detector,
                         face_box, yunet_path)
        self._session: Callable = session if callable(session) else (lambda: session)
        self.mel = mel_spectrogram(speech.samples, speech.sample_rate)

    def _sync(self, frames, boxes, indices):
        session = self._session()
        mel_name, face_name, size, dynamic = wav2lip_io(session)
        crops = [cv2.resize(f[y1:y2, x1:x2], (size, size), interpolation=cv2.INTER_AREA)
                 for f, (x1, y1, x2, y2) in zip(frames, boxes)]
        faces = np.stack([c[..., ::-1] for c in crops]).astype(np.float32) / 255.0  # BGR
        masked = faces.copy()
        masked[:, size // 2:] = 0
        face_in = np.ascontiguousarray(np.concatenate([masked, faces], 3).transpose(0, 3, 1, 2))
        mel_in = np.stack([mel_window(self.mel, i, self.fps) for i in indices])[:, None]
        step = len(frames) if dynamic else 1
        out = np.concatenate([session.run(None, {mel_name: mel_in[i:i + step],
                                                 face_name: face_in[i:i + step]})[0]
                              for i in range(0, len(frames), step)])
        return [paste_face(f, pred.transpose(1, 2, 0)[..., ::-1] * 255.0, box)  # BGR [0, 1]
                for f, pred, box in zip(frames, out, boxes)]
