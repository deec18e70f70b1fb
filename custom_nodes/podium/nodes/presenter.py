"""Presenter nodes: what the viewer sees while the narration plays."""
from ..profiling import reported_stage
from ..engines.presenter import PortraitMotion, SlideDeck, load_image
from ..errors import PodiumError
from ..paths import resolve_input
from .comfy_types import rgb_from_image
from .fingerprint import content_hash, upload_combo


class PodiumPresenter:
    """A portrait with gentle idle motion, or lecture slides from the script when no
    portrait is given. Frames are drawn on demand when the video is written."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "script": ("PODIUM_SCRIPT",),
                "speech": ("PODIUM_SPEECH",),
                # down to 16: a picture-in-picture box is drawn at its own (small) size
                "width": ("INT", {"default": 1280, "min": 16, "max": 4096, "step": 2}),
                "height": ("INT", {"default": 720, "min": 16, "max": 4096, "step": 2}),
                "motion": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 3.0, "step": 0.1,
                                     "tooltip": "Strength of the portrait's sway and nods; 0 holds it still."}),
                "portrait_path": upload_combo("image", "A PNG/JPEG/WebP file in the input folder (upload it "
                                              "with the button); empty and no portrait: slides.", empty=True),
            },
            "optional": {
                "portrait": ("IMAGE", {"tooltip": "A portrait from any image node; wins over portrait_path."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL",)
    RETURN_NAMES = ("visual",)
    FUNCTION = "present"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "Portrait with idle motion, or slides that follow the script."

    @classmethod
    def IS_CHANGED(cls, portrait_path="", **_):
        return content_hash(portrait_path, "portrait_path")

    @classmethod
    def VALIDATE_INPUTS(cls, portrait_path=""):
        if portrait_path:
            try:
                load_image(resolve_input(portrait_path, "portrait_path"))
            except PodiumError as err:
                return str(err)
        return True

    @reported_stage("presenter")
    def present(self, script, speech, width, height, motion, portrait=None, portrait_path=""):
        if width % 2 or height % 2:
            raise PodiumError(f"width and height must be even for H.264, got {width}x{height}")
        if portrait is not None:
            image = rgb_from_image(portrait)
        elif portrait_path:
            image = load_image(resolve_input(portrait_path, "portrait_path"))
        else:
            return (SlideDeck(script, speech, width, height),)
        return (PortraitMotion(image, width, height, speech=speech, strength=motion),)
