"""Lip sync node: the presenter's mouth follows the narration (Wav2Lip, ONNX Runtime)."""
from ..engines.lipsync import LipSyncVisual, load_wav2lip
from ..errors import PodiumError
from ..profiling import reported_stage
from .. import models
from ..models import ids_of_kind
from .fingerprint import stat_stamp
from .frames import frame_sequence

NO_MODEL = "none (use model_path)"


def wav2lip_model_ids() -> list[str]:
    return ids_of_kind("wav2lip-onnx") or [NO_MODEL]


def parse_face_box(text: str):
    """'x1,y1,x2,y2' in pixels of the visual, or None for empty text."""
    if not text.strip():
        return None
    try:
        box = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise PodiumError(f"face_box must be four whole numbers x1,y1,x2,y2, got {text!r}")
    return box


def _model_file(model: str, model_path: str = ""):
    """The Wav2Lip .onnx: `model_path` when given (inside ComfyUI from the input or lipsync model
    folders only), else the registry's."""
    return models.model_path(model, model_path, what="model_path", folder="lipsync")


def source_visual(visual, frames, fps):
    """What a lip-sync node draws on: `frames` (an IMAGE batch, played back and forth at fps)
    when connected, else `visual`."""
    if frames is not None:
        visual = frame_sequence(frames, fps)
    elif visual is None:
        raise PodiumError("connect a visual (Podium Presenter) or frames (an IMAGE batch) to lip sync")
    return visual


class PodiumLipSync:
    """Wav2Lip over the presenter, or over an IMAGE batch from any node (a core video model's
    frames, a drawn picture): faces found (YuNet, else OpenCV's Haar cascade) and smoothed
    across frames; frames without a face pass through. Frames are made when the video is
    written, in batches."""

    @classmethod
    def INPUT_TYPES(cls):
        pad = lambda d, tip: ("INT", {"default": d, "min": -512, "max": 512, "tooltip": tip})
        return {
            "required": {
                "speech": ("PODIUM_SPEECH",),
                "fps": ("INT", {"default": 25, "min": 1, "max": 120,
                                "tooltip": "Must equal the Save node's fps: each frame gets the audio window of its own time."}),
                "model": (wav2lip_model_ids(), {"tooltip": "A Wav2Lip .onnx from models.yaml (podium models list); non-commercial weights."}),
                "pad_top": pad(0, "Pixels added above the detected face."),
                "pad_bottom": pad(10, "Pixels added below the detected face: include the chin."),
                "pad_left": pad(0, "Pixels added left of the detected face."),
                "pad_right": pad(0, "Pixels added right of the detected face."),
                "smooth_frames": ("INT", {"default": 5, "min": 1, "max": 60,
                                          "tooltip": "Face boxes are averaged over this many frames; 1: no smoothing."}),
                "batch_size": ("INT", {"default": 16, "min": 1, "max": 512,
                                       "tooltip": "Frames per Wav2Lip run; one batch of frames is held in memory."}),
                "face_detector": (["auto", "haar"], {"tooltip": "auto: the ONNX face detector (YuNet) when installed, else OpenCV's Haar cascade."}),
            },
            "optional": {
                "visual": ("PODIUM_VISUAL", {"tooltip": "The presenter (Podium Presenter, Upscale); or connect frames."}),
                "frames": ("IMAGE", {"tooltip": "Frames from any image node (B, H, W, 3), e.g. a core video "
                                    "model's clip: one per video frame at fps, played back and forth to "
                                    "the narration's length; wins over visual."}),
                "model_path": ("STRING", {"default": "", "tooltip": "Any Wav2Lip .onnx (relative: in the input folder); overrides 'model'."}),
                "face_box": ("STRING", {"default": "", "tooltip": "Fixed framing: x1,y1,x2,y2 in pixels; skips detection."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "sync"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "Wav2Lip lip sync over the presenter, frame-accurate at any fps."

    @classmethod
    def IS_CHANGED(cls, model=NO_MODEL, model_path="", **_):
        return stat_stamp(lambda: _model_file(model, model_path))

    @classmethod
    def VALIDATE_INPUTS(cls, face_box="", model_path=""):
        try:
            parse_face_box(face_box or "")
        except PodiumError as err:
            return str(err)
        if model_path and not model_path.endswith(".onnx"):
            return f"model_path must be a Wav2Lip .onnx file, got {model_path!r}"
        return True

    @reported_stage("lipsync")
    def sync(self, speech, fps, model, pad_top, pad_bottom, pad_left, pad_right,
             smooth_frames, batch_size, face_detector, visual=None, frames=None, model_path="",
             face_box=""):
        visual = source_visual(visual, frames, fps)
        if not model_path and model == NO_MODEL:
            raise PodiumError("no Wav2Lip model in models.yaml: give model_path")
        path = _model_file(model, model_path)
        load_wav2lip(path)  # fails now, not halfway through the video, if the file is wrong
        result = LipSyncVisual(visual, speech, lambda: load_wav2lip(path), fps,
                               pads=(pad_top, pad_bottom, pad_left, pad_right),
                               smooth_frames=smooth_frames, batch_size=batch_size,
                               face_detector=face_detector, face_box=parse_face_box(face_box))
        return (result,)
