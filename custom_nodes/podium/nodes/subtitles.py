"""Subtitle nodes: cues timed from the real audio of each sentence."""
from ..profiling import reported_stage
from ..engines.subtitles import cues_from_speech


class PodiumSubtitles:
    """Subtitle cues from the speech: each sentence shown while it is spoken."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "speech": ("PODIUM_SPEECH",),
                "line_chars": ("INT", {"default": 42, "min": 16, "max": 120,
                                       "tooltip": "Longest line; a cue has at most two."}),
            },
        }

    RETURN_TYPES = ("PODIUM_SUBTITLES",)
    RETURN_NAMES = ("subtitles",)
    FUNCTION = "cue"
    CATEGORY = "Podium/subtitles"

    @reported_stage("subtitles")
    def cue(self, speech, line_chars):
        return (cues_from_speech(speech, line_chars=line_chars),)
