"""Music and sound-effect nodes: ACE-Step 1.5 (and Stable Audio Open for sounds) through
diffusers, from models.yaml; AUDIO out."""
from __future__ import annotations

from ..engines.music import MAX_SECONDS, generate, load_pipeline, sound_effect
from ..models import entry_path, ids_of_kind
from ..profiling import reported_stage
from .comfy_types import audio_from_channels
from .fingerprint import stat_stamp

KIND, SFX_KINDS = "ace-step", ("ace-step", "stable-audio")
FALLBACK_IDS = ["acestep-v15-xl-turbo"]


def music_model_ids() -> list[str]:
    """Registry ids of kind ace-step (the default one if the registry lists none)."""
    return ids_of_kind(KIND) or list(FALLBACK_IDS)


def sound_model_ids() -> list[str]:
    """ACE-Step models first (MIT), then Stable Audio ones."""
    return [i for kind in SFX_KINDS for i in ids_of_kind(kind)] or list(FALLBACK_IDS)


def _inputs(prompt_default: str, prompt_tip: str, seconds_default: float, ids: list[str]) -> dict:
    return {
        "required": {
            "prompt": ("STRING", {"multiline": True, "default": prompt_default, "tooltip": prompt_tip}),
            "seconds": ("FLOAT", {"default": seconds_default, "min": 0.1, "max": MAX_SECONDS, "step": 0.1,
                                  "tooltip": "Length of the audio; the output has exactly this many "
                                             "seconds of samples at the model's rate."}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF,
                             "tooltip": "The same seed gives the same audio on any device."}),
            "model": (ids, {"default": ids[0], "tooltip": "A model from models.yaml (podium models list); "
                                                          "see its licence there."}),
        },
        "optional": {
            "steps": ("INT", {"default": 0, "min": 0, "max": 200,
                              "tooltip": "0: the model's default (ACE-Step: 8 turbo, 30 base/SFT; "
                                         "Stable Audio: 100)."}),
        },
    }


class PodiumMusicGenerate:
    """An instrumental music bed for the video, from a text description of its mood."""

    @classmethod
    def INPUT_TYPES(cls):
        return _inputs("calm ambient piano, soft pads, slow tempo, instrumental",
                       "Genre, mood, instruments, tempo. The bed is instrumental (no vocals).", 30.0,
                       music_model_ids())

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "make"
    CATEGORY = "Podium/sound"
    DESCRIPTION = "Generate instrumental music with ACE-Step 1.5 (MIT), through diffusers."

    @classmethod
    def IS_CHANGED(cls, model="", **_):
        return stat_stamp(lambda: entry_path(model, folder=True))

    @reported_stage("music")
    def make(self, prompt, seconds, seed, model, steps=0):
        pipe = load_pipeline(entry_path(model, folder=True))  # the entry's first file is model_index.json
        return (audio_from_channels(*generate(pipe, prompt, seconds, seed, steps)),)


class PodiumSoundEffect:
    """A short sound (applause, a door, a whoosh) for a cue in the script."""

    @classmethod
    def INPUT_TYPES(cls):
        return _inputs("applause", "The sound, in a few words.", 2.0, sound_model_ids())

    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "make"
    CATEGORY = "Podium/sound"
    DESCRIPTION = ("Generate a sound effect: ACE-Step 1.5 (MIT) prompted for the sound alone, or Stable "
                   "Audio Open 1.0 (non-commercial use).")

    @classmethod
    def IS_CHANGED(cls, model="", **_):
        return stat_stamp(lambda: entry_path(model, folder=True))

    @reported_stage("sound_effect")
    def make(self, prompt, seconds, seed, model, steps=0):
        pipe = load_pipeline(entry_path(model, folder=True))
        return (audio_from_channels(*sound_effect(pipe, prompt, seconds, seed, steps)),)
