"""Script nodes: where the narration comes from."""
from ..profiling import reported_stage
from ..engines.script import parse_script


class PodiumDirectScript:
    """Your own narration (plain text, Markdown headings, or a Podium script JSON),
    cut into segments at sentence boundaries."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "default": "",
                                    "tooltip": "What the presenter says. Blank lines start a new segment; '## Heading' titles a slide."}),
                "max_words_per_segment": ("INT", {"default": 60, "min": 5, "max": 400,
                                                  "tooltip": "Segments are rendered as separate clips; about 2.5 words per second."}),
            },
            "optional": {
                "title": ("STRING", {"default": "", "tooltip": "Video title; empty: the script's own or its first words."}),
            },
        }

    RETURN_TYPES = ("PODIUM_SCRIPT",)
    RETURN_NAMES = ("script",)
    FUNCTION = "make"
    CATEGORY = "Podium/script"
    DESCRIPTION = "Split your narration into segments at sentence boundaries."

    @classmethod
    def VALIDATE_INPUTS(cls, text=None):
        if text is not None and not text.strip():  # None: linked, known only when it runs
            return "the script is empty: give the narration, at least one sentence"
        return True

    @reported_stage("script")
    def make(self, text, max_words_per_segment, title=""):
        return (parse_script(text, max_words=max_words_per_segment, title=title),)
