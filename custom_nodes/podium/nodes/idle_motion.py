"""Idle clip nodes: the presenter's natural idle motion (image-to-video, Wan2.2-TI2V-5B), looped
under the lip sync; where it cannot be made, the procedural motion stays and one line says why."""
from __future__ import annotations

import logging

import numpy as np

from ..engines import idle_motion as engine
from ..engines.presenter import PortraitMotion, load_image
from ..errors import ModelMissingError, PodiumError
from ..files import atomic_write_text
from ..models import ids_of_kind, load_registry
from ..paths import next_output_path, resolve_input
from ..profiling import reported_stage
from .fingerprint import content_hash, stat_stamp
from .presenter_image import model_folder_path

log = logging.getLogger("podium.idle")
KIND = "wan-i2v"
OFF = "off (procedural motion)"


def idle_model_ids() -> list[str]:
    return [*ids_of_kind(KIND), OFF]


def wan_inputs() -> dict:
    """The inputs the Wan nodes (idle clip, scene) share, spelled once; each node lists them
    in its own order (a saved workflow's widget values follow it)."""
    return {
        "steps": ("INT", {"default": 0, "min": 0, "max": 100, "tooltip": f"0: the model's default ({engine.STEPS})."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF}),
        "resolution": ("INT", {"default": engine.LONG_SIDE, "min": 64, "max": 2048, "step": 32,
                               "tooltip": "Size class of a clip as made: the pixels of a 16:9 clip this wide "
                                          "(1280: the model's own 1280x704), in the video's aspect; it is "
                                          "scaled to the video's size when played."}),
        "model_folder": ("STRING", {"default": "", "tooltip": "Any Wan 2.2 TI2V diffusers folder "
                                    "(relative: in models/diffusers); wins over the model chosen."}),
    }


def check_even(width: int, height: int) -> None:
    if width % 2 or height % 2:
        raise PodiumError(f"width and height must be even for H.264, got {width}x{height}")


def wan_folder(model: str, model_folder: str = ""):
    """(the Wan folder of `model`, or `model_folder` which wins; why it cannot run here, None
    when it can). ModelMissingError when it is not installed."""
    folder = engine.check_folder(model_folder_path(model, model_folder))
    vram = None if model_folder else load_registry().get(model).vram_gb
    return folder, engine.unfit_reason(engine.estimate_bytes(folder, vram), registry_model=not model_folder)


def _frames_image(frames: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)


class PodiumIdleClip:
    """One image-to-video clip of the still presenter (blinks, breathing, small head turns, no
    speech), looped and played at its own fps for any length: the visual the lip sync takes."""

    @classmethod
    def INPUT_TYPES(cls):
        ids, wan = idle_model_ids(), wan_inputs()
        return {
            "required": {
                "model": (ids, {"default": ids[0], "tooltip": "An image-to-video model from models.yaml "
                                "(podium models list); off: the procedural motion."}),
                "seconds": ("FLOAT", {"default": 3.0, "min": 0.5, "max": 10.0, "step": 0.5,
                                      "tooltip": "Length of the clip made; it loops for any narration."}),
                "loop": (list(engine.LOOPS), {"tooltip": "crossfade: cut at the best-matching pose and blend; "
                                              "ping-pong: forward, then backward."}),
                "steps": wan["steps"],
                "seed": wan["seed"],
                "resolution": wan["resolution"],
            },
            "optional": {
                "presenter": ("PODIUM_VISUAL", {"tooltip": "Podium Presenter's portrait: its still is animated, "
                                                "and its procedural motion stays if no clip can be made."}),
                "portrait_path": ("STRING", {"default": "", "tooltip": "Without presenter: a PNG/JPEG/WebP "
                                             "(relative: in the input folder), framed at width x height."}),
                "width": ("INT", {"default": 1280, "min": 64, "max": 4096, "step": 2}),
                "height": ("INT", {"default": 720, "min": 64, "max": 4096, "step": 2}),
                "clip_path": ("STRING", {"default": "", "tooltip": "A clip saved before (Podium Save Idle Clip, "
                                         "relative: in the input folder): played as it is, nothing is made."}),
                "model_folder": wan["model_folder"],
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL", "IMAGE")
    RETURN_NAMES = ("visual", "frames")
    FUNCTION = "make"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "The presenter's idle motion from an image-to-video model (Wan 2.2 TI2V 5B), looped."

    @classmethod
    def IS_CHANGED(cls, model=OFF, portrait_path="", clip_path="", model_folder="", **_):
        off = model == OFF and not model_folder
        return (content_hash(portrait_path, "portrait_path"), content_hash(clip_path, "clip_path"),
                "" if off else stat_stamp(lambda: model_folder_path(model, model_folder)))

    @reported_stage("idle_clip")
    def make(self, model, seconds, loop, steps, seed, resolution, presenter=None, portrait_path="",
             width=1280, height=720, clip_path="", model_folder=""):
        base = self._base(presenter, portrait_path, width, height)
        if clip_path:
            frames, fps = engine.load_clip(resolve_input(clip_path, "clip_path"))
            return engine.IdleLoop(frames, fps, base.width, base.height), _frames_image(frames)
        still = getattr(base, "still", None)
        if still is None:
            return self._keep(base, "the presenter shows slides, not a portrait")
        if model == OFF and not model_folder:
            return self._keep(base, "the idle clip is off", quiet=True)
        try:
            folder, why = wan_folder(model, model_folder)
        except ModelMissingError:
            return self._keep(base, f"{model} is not installed (podium models pull {model})")
        if why:
            return self._keep(base, why)
        clip = engine.make_clip(folder, still, seconds, steps, -1.0, seed, resolution)
        visual = engine.looped(clip, base.width, base.height, loop)
        return visual, _frames_image(visual.loop)

    @staticmethod
    def _base(presenter, portrait_path, width, height):
        if presenter is not None:
            return presenter
        if not portrait_path:
            raise PodiumError("connect a presenter (Podium Presenter) or give portrait_path")
        check_even(width, height)
        return PortraitMotion(load_image(resolve_input(portrait_path, "portrait_path")), width, height)

    @staticmethod
    def _keep(base, why: str, quiet: bool = False):
        note = f"idle clip not made: {why}; the procedural motion stays"
        if not quiet:
            log.warning("%s", note)
        still = getattr(base, "still", None)
        frame = still if still is not None else base.render(0.0)
        return engine.ProceduralIdle(base, note), _frames_image(frame[None])


class PodiumSaveIdleClip:
    """Keep an idle clip (lossless FFV1 .mkv in the output folder) to play again with the Idle
    clip node's clip_path; when none was made, a .txt saying why is written instead."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"visual": ("PODIUM_VISUAL",),
                             "filename_prefix": ("STRING", {"default": "podium/idle"})}}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "Podium/output"
    DESCRIPTION = "Write the looped idle clip (lossless .mkv) to the output folder."

    def save(self, visual, filename_prefix):
        if isinstance(visual, engine.ProceduralIdle):
            path, subfolder, name = next_output_path(filename_prefix, "txt")
            atomic_write_text(path, visual.note + "\n")
            return {"ui": {"images": [{"filename": name, "subfolder": subfolder, "type": "output"}]}}
        if not isinstance(visual, engine.IdleLoop):
            raise PodiumError("Save idle clip takes the visual of a Podium Idle Clip node")
        path, subfolder, name = next_output_path(filename_prefix, "mkv")
        engine.save_clip(path, visual.loop, visual.fps)
        return {"ui": {"images": [{"filename": name, "subfolder": subfolder, "type": "output",
                                   "frames": len(visual.loop), "fps": visual.fps}]}}
