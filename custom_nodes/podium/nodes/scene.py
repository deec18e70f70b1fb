"""Scene node: the generated shots of a script's `[scene: ...]` segments, over their narration."""
from __future__ import annotations

import logging

import numpy as np

from ..engines import idle_motion as wan
from ..engines import scene as engine
from ..engines.presenter_image import DEFAULTS, draw, family_of, load_pipeline
from ..engines.scene_spec import read_scene
from ..errors import ModelMissingError
from ..profiling import reported_stage
from .comfy_types import rgb_frames_from_image
from .fingerprint import stat_stamp
from .idle_motion import OFF, check_even, idle_model_ids, wan_folder, wan_inputs
from .presenter_image import diffusers_model_ids, model_folder_path

log = logging.getLogger("podium.scene")


def image_model_ids() -> list[str]:
    return [*diffusers_model_ids(), OFF]


class PodiumScene:
    """Each segment with a scene plays over its shot, made by the best generator installed:
    Wan 2.2 TI2V text-to-video (image-to-video on the presenter's portrait for `with the
    presenter`), looped with a cross-fade; else a text-to-image still with the camera move; else
    a title card of the prompt with the move. Other segments show `fallback` (slides, the
    presenter). The second output says which generator made each shot."""

    @classmethod
    def INPUT_TYPES(cls):
        videos, images, shared = idle_model_ids(), image_model_ids(), wan_inputs()
        return {
            "required": {
                "script": ("PODIUM_SCRIPT",),
                "speech": ("PODIUM_SPEECH",),
                "width": ("INT", {"default": 1280, "min": 16, "max": 4096, "step": 2}),
                "height": ("INT", {"default": 720, "min": 16, "max": 4096, "step": 2}),
                "video_model": (videos, {"default": videos[0], "tooltip": "Text/image-to-video (Wan 2.2 TI2V 5B); "
                                         "off: a still or a title card."}),
                "image_model": (images, {"default": images[0], "tooltip": "Without a video model: a still from this "
                                         "text-to-image model with the camera move; off: a title card."}),
                "seed": shared["seed"],
                "steps": shared["steps"],
                "resolution": shared["resolution"],
                "clip_seconds": ("FLOAT", {"default": engine.CLIP_SECONDS, "min": 0.5, "max": 10.0, "step": 0.5,
                                           "tooltip": "The longest clip made; a longer narration loops it with a cross-fade."}),
            },
            "optional": {
                "fallback": ("PODIUM_VISUAL", {"tooltip": "What segments without a scene show (slides, the presenter)."}),
                "presenter": ("PODIUM_VISUAL", {"tooltip": "Podium Presenter with a portrait: its still starts "
                                                "the shots of scenes `with the presenter`."}),
                "model_folder": shared["model_folder"],
                "image_model_folder": ("STRING", {"default": "", "tooltip": "Any diffusers text-to-image folder; "
                                                  "wins over image_model."}),
                "clip": ("IMAGE", {"lazy": True, "tooltip": "The shot's frames from core video nodes (Podium Scene "
                                   "shot -> Wan22ImageToVideoLatent -> KSampler -> VAE Decode): the first scene's "
                                   "shot, looped with a cross-fade; made only when the script has a scene."}),
                "clip_fps": ("INT", {"default": wan.CLIP_FPS, "min": 1, "max": 120,
                                     "tooltip": "The clip's frame rate (Wan 2.2: 24)."}),
            },
        }

    RETURN_TYPES = ("PODIUM_VISUAL", "STRING")
    RETURN_NAMES = ("visual", "generator")
    FUNCTION = "make"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "Generated scene shots (Wan 2.2 / a still / a title card) for the script's [scene: ...] marks."

    @classmethod
    def IS_CHANGED(cls, video_model=OFF, image_model=OFF, model_folder="", image_model_folder="", **_):
        def folders():
            found = []
            for model, folder in ((video_model, model_folder), (image_model, image_model_folder)):
                if model != OFF or folder:
                    try:
                        found.append(model_folder_path(model, folder))
                    except ModelMissingError:
                        pass
            return found
        return stat_stamp(folders)

    def check_lazy_status(self, script, clip=None, **_):
        """The core graph's clip is made only for a script with a scene (a segment without one
        never runs the video model)."""
        wanted = clip is None and engine.first_scene([s.scene for s in script.segments]) >= 0
        return ["clip"] if wanted else []

    @reported_stage("scene")
    def make(self, script, speech, width, height, video_model, image_model, seed, steps, resolution,
             clip_seconds, fallback=None, presenter=None, model_folder="", image_model_folder="",
             clip=None, clip_fps=wan.CLIP_FPS):
        check_even(width, height)
        shots, lines = [], []
        given = engine.first_scene([s.scene for s in script.segments]) if clip is not None else -1
        for index, segment in enumerate(script.segments):
            if not segment.scene or index >= len(speech.segment_bounds):
                shots.append(None)
                continue
            start, end = speech.segment_bounds[index]
            spec = read_scene(segment.scene)
            makers = self._makers(spec, end - start, width, height, video_model, image_model, seed + index,
                                  steps, resolution, clip_seconds, presenter, model_folder, image_model_folder)
            if index == given:  # the core graph's clip: best, the one this run was given
                makers.insert(0, (_core_name(spec, presenter), lambda: _core_clip(clip, clip_fps, width, height)))
            shot = engine.make_shot(spec, end - start, width, height, makers)
            log.info("%s", shot.generator)
            shots.append(shot.visual)
            lines.append(shot.generator)
        base = fallback if fallback is not None else engine.Blank(width, height)
        track = engine.SceneTrack(shots, speech.segment_bounds, base, width, height)
        return track, "\n".join(lines) or "no scene in this script"

    def _makers(self, spec, seconds, width, height, video_model, image_model, seed, steps, resolution,
                clip_seconds, presenter, model_folder, image_model_folder):
        still = getattr(presenter, "still", None)

        def video():
            if video_model == OFF and not model_folder:
                return None
            folder, why = wan_folder(video_model, model_folder)
            if why:
                return why
            portrait = wan.cover(still, width, height) if still is not None else None
            frames = engine.video_shot(folder, spec, seconds, width, height, seed, steps, resolution,
                                       portrait, clip_seconds)
            return wan.looped(frames, width, height)

        def image():
            if image_model == OFF and not image_model_folder:
                return None
            pipe = load_pipeline(model_folder_path(image_model, image_model_folder))
            long_side = min(resolution, DEFAULTS[family_of(pipe)][2])
            w, h = wan.generation_size(width, height, long_side, 16)
            picture = draw(pipe, spec.prompt, engine.SCENE_NEGATIVE, w, h, steps, None, seed)
            return engine.MovingStill(np.asarray(picture), spec.move, seconds, width, height)

        kind = "image-to-video on the presenter" if spec.with_presenter and still is not None else "text-to-video"
        return [(f"Wan 2.2 TI2V {kind}, looped with a cross-fade", video),
                ("a text-to-image still with the camera " + spec.move, image)]


def _core_name(spec, presenter) -> str:
    kind = ("image-to-video on the presenter" if spec.with_presenter and getattr(presenter, "still", None) is not None
            else "text-to-video")
    return f"Wan 2.2 TI2V 5B on ComfyUI core nodes ({kind}), looped with a cross-fade"


def _core_clip(clip, fps: int, width: int, height: int):
    """The core nodes' frames as a shot: looped with a cross-fade at their best-matching frames,
    played at their own rate over the narration's span (the in-process clip's path)."""
    return wan.looped(rgb_frames_from_image(clip), width, height, fps=fps)
