"""MuseTalk 1.5 lip sync node: the presenter's mouth follows the narration (MIT code, weights
usable commercially), beside the Wav2Lip node with the same inputs and output."""
from pathlib import Path

from ..engines.musetalk import MuseTalkFiles, MuseTalkModels, MuseTalkVisual
from ..errors import PodiumError
from .. import models
from ..models import ids_of_kind
from ..profiling import reported_stage
from .fingerprint import stat_stamp
from .lipsync import parse_face_box, source_visual

KIND_UNET, KIND_VAE, KIND_WHISPER = "musetalk", "diffusers-vae", "whisper"
NO_MODEL = "none (see podium models list)"


def _ids(kind: str) -> list[str]:
    return ids_of_kind(kind) or [NO_MODEL]


def installed_files(model_id: str) -> list[Path]:
    return models.entry_files(model_id)


def _folder(model_id: str) -> Path:
    return models.entry_folder(model_id)


def musetalk_files(model: str, vae: str, whisper: str) -> MuseTalkFiles:
    """The installed files of the three registry entries (UNet: unet.pth + musetalk.json)."""
    for value, what in ((model, "MuseTalk"), (vae, "VAE"), (whisper, "Whisper")):
        if value == NO_MODEL:
            raise PodiumError(f"no {what} model in models.yaml: add one (see podium models list)")
    unet = {p.suffix: p for p in installed_files(model)}
    if ".json" not in unet or not ({".pth", ".bin", ".pt"} & set(unet)):
        raise PodiumError(f"models.yaml entry {model!r} must list the UNet weights (.pth) "
                          "and its config (musetalk.json)")
    weights = next(unet[s] for s in (".pth", ".bin", ".pt") if s in unet)
    return MuseTalkFiles(weights, unet[".json"], _folder(vae), _folder(whisper))


class PodiumMuseTalk:
    """MuseTalk 1.5 over the presenter, or over an IMAGE batch from any node (a core video
    model's frames, an idle clip): faces framed from landmarks as MuseTalk was trained (MediaPipe's
    face mesh; else the detector's points), smoothed across frames; the 256x256 crop is redrawn
    from the nose down and blended back over the mouth and jaw (nose and background kept); every
    frame is the model's, quiet audio reaching it as silence. Frames are made when the video is
    written."""

    @classmethod
    def INPUT_TYPES(cls):
        pad = lambda d, tip: ("INT", {"default": d, "min": -512, "max": 512, "tooltip": tip})
        return {
            "required": {
                "speech": ("PODIUM_SPEECH",),
                "fps": ("INT", {"default": 25, "min": 1, "max": 120,
                                "tooltip": "Must equal the Save node's fps: each frame gets the audio window of its own time."}),
                "model": (_ids(KIND_UNET), {"tooltip": "MuseTalk UNet from models.yaml (podium models list)."}),
                "vae": (_ids(KIND_VAE), {"tooltip": "The VAE MuseTalk was trained with (sd-vae-ft-mse)."}),
                "whisper": (_ids(KIND_WHISPER), {"tooltip": "The audio encoder MuseTalk was trained with (whisper-tiny)."}),
                "pad_top": pad(0, "Pixels added above the detected face."),
                "pad_bottom": pad(10, "Pixels added below the chin (MuseTalk 1.5's extra margin: 10)."),
                "pad_left": pad(0, "Pixels added left of the detected face."),
                "pad_right": pad(0, "Pixels added right of the detected face."),
                "smooth_frames": ("INT", {"default": 5, "min": 1, "max": 60,
                                          "tooltip": "Face boxes are averaged over this many frames; 1: no smoothing."}),
                "batch_size": ("INT", {"default": 8, "min": 1, "max": 256,
                                       "tooltip": "Frames per UNet run; one batch of frames is held in memory."}),
                "face_detector": (["auto", "haar"], {"tooltip": "auto: the ONNX face detector (YuNet) when installed, else OpenCV's Haar cascade."}),
                "silence_db": ("FLOAT", {"default": -50.0, "min": -120.0, "max": 0.0, "step": 1.0,
                                         "tooltip": "Audio quieter than this (dBFS) reaches the model as silence: it draws a closed mouth."}),
            },
            "optional": {
                "visual": ("PODIUM_VISUAL", {"tooltip": "The presenter (Podium Presenter, Upscale); or connect frames."}),
                "frames": ("IMAGE", {"tooltip": "Frames from any image node (B, H, W, 3): one per video frame at "
                                    "fps, played back and forth to the narration's length; wins over visual."}),
                "face_box": ("STRING", {"default": "", "tooltip": "Fixed face (brows to chin): x1,y1,x2,y2 in pixels; skips detection."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "sync"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "MuseTalk 1.5 lip sync over the presenter, frame-accurate at any fps."

    @classmethod
    def IS_CHANGED(cls, model=NO_MODEL, vae=NO_MODEL, whisper=NO_MODEL, **_):
        return stat_stamp(lambda: [*installed_files(model), _folder(vae), _folder(whisper)])

    @classmethod
    def VALIDATE_INPUTS(cls, face_box=""):
        try:
            parse_face_box(face_box or "")
        except PodiumError as err:
            return str(err)
        return True

    @reported_stage("lipsync")
    def sync(self, speech, fps, model, vae, whisper, pad_top, pad_bottom, pad_left, pad_right,
             smooth_frames, batch_size, face_detector, silence_db, visual=None, frames=None,
             face_box=""):
        visual = source_visual(visual, frames, fps)
        # fails now, not halfway through the video, if a file is missing or wrong
        models = MuseTalkModels(musetalk_files(model, vae, whisper)).load_all()
        result = MuseTalkVisual(visual, speech, models, fps,
                                pads=(pad_top, pad_bottom, pad_left, pad_right),
                                smooth_frames=smooth_frames, batch_size=batch_size,
                                face_detector=face_detector, face_box=parse_face_box(face_box),
                                silence_db=silence_db)
        return (result,)
