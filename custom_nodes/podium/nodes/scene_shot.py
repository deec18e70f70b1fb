"""Scene shot node: what a ComfyUI core video graph (Wan 2.2 TI2V 5B: Wan22ImageToVideoLatent,
KSampler, VAEDecode) needs to make the shot of a script's `[scene: ...]` segment, so its frames
go into the Scene node's `clip` input and the camera move, the loop to the narration's length
and the PiP layout stay the Scene node's one code path."""
from __future__ import annotations

from ..engines import idle_motion as wan
from ..engines import scene as engine
from ..errors import PodiumError
from .comfy_types import image_from_frames


class PodiumSceneShot:
    """The first scene segment's prompt (the camera move in words), the generation size (the
    video's aspect by area at `resolution`, multiples of 32), the frames for its narration (24
    fps, at most `clip_seconds`) and, for a scene `with the presenter`, the presenter's portrait
    as the start image (else nothing: text-to-video)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "script": ("PODIUM_SCRIPT",),
                "speech": ("PODIUM_SPEECH",),
                "width": ("INT", {"default": 1280, "min": 16, "max": 4096, "step": 2,
                                  "tooltip": "The video's width (the shot keeps its aspect)."}),
                "height": ("INT", {"default": 720, "min": 16, "max": 4096, "step": 2}),
                "resolution": ("INT", {"default": wan.LONG_SIDE, "min": 64, "max": 2048, "step": 32,
                                       "tooltip": "Long side of the shot as made (1280: Wan 2.2 5B's own, "
                                       "1280x704); by area for other aspects."}),
                "clip_seconds": ("FLOAT", {"default": engine.CLIP_SECONDS, "min": 0.2, "max": 10.0, "step": 0.1,
                                           "tooltip": "The longest clip made (5 s: 121 frames); the Scene node "
                                           "loops it to the narration."}),
            },
            "optional": {
                "presenter": ("PODIUM_VISUAL", {"tooltip": "Podium Presenter with a portrait: the start image "
                                                "of scenes `with the presenter`."}),
            },
        }

    RETURN_TYPES = ("STRING", "INT", "INT", "INT", "IMAGE")
    RETURN_NAMES = ("prompt", "width", "height", "length", "start_image")
    FUNCTION = "plan"
    CATEGORY = "Podium/presenter"
    DESCRIPTION = "Prompt, size, length and start image of a scene shot, for core video nodes."

    def plan(self, script, speech, width, height, resolution, clip_seconds, presenter=None):
        scenes = [segment.scene for segment in script.segments]
        request = engine.shot_request(scenes, speech.segment_bounds, width, height, resolution, clip_seconds,
                                      getattr(presenter, "still", None))
        if request is None:
            raise PodiumError("this script has no [scene: ...] mark: nothing for the shot graph to make "
                              "(the Scene node asks for a shot only when there is one)")
        start = None if request.start_image is None else image_from_frames(request.start_image[None] / 255.0)
        return request.prompt, request.width, request.height, request.frames, start
