"""Subtitle nodes: cues timed from the real audio, and word-level captions (words, karaoke)."""
import logging

from ..engines.captions import MODES, Captions, load_style, style_names
from ..engines.subtitles import cues_from_speech
from ..engines.word_timing import WhisperAligner, sentence_words
from ..errors import PodiumError
from ..models import ids_of_kind
from ..profiling import reported_stage

log = logging.getLogger("podium.subtitles")
ALIGNER_KIND = "whisper-words"  # models.yaml: a whole Whisper checkpoint, tokenizer included
AUTO_ALIGNER = "auto (an installed Whisper)"
NO_ALIGNER = "none (share each sentence over its words)"


def _aligner_choices() -> list[str]:
    """auto first: a graph does not need a Whisper model installed to run (models_in)."""
    return [AUTO_ALIGNER, *ids_of_kind(ALIGNER_KIND), NO_ALIGNER]


class _LazyAligner:
    """Loads the Whisper model only if a sentence lacks the voice's own word times (the
    registry too is read only then: Piper's words need neither); a model that is not
    installed leaves the words spread (the note says so), it is not an error."""

    def __init__(self, choice: str):
        self.choice, self._aligner, self.failed = choice, None, False

    def __call__(self, samples, rate):
        if self._aligner is None and not self.failed:
            self._aligner = self._load()
            self.failed = self._aligner is None
        return self._aligner(samples, rate) if self._aligner else []

    def _load(self):
        from .musetalk import _folder

        ids = ids_of_kind(ALIGNER_KIND) if self.choice == AUTO_ALIGNER else [self.choice]
        for model_id in ids:
            try:
                return WhisperAligner(_folder(model_id))
            except (PodiumError, ImportError, KeyError) as err:
                log.info("word timings: Whisper %s not usable (%s)", model_id, str(err)[:200])
        return None


class PodiumSubtitles:
    """Subtitle cues from the speech: each sentence shown while it is spoken; with `mode`
    words or karaoke, each word when it is spoken (the voice's own timings, else Whisper's)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "speech": ("PODIUM_SPEECH",),
                "line_chars": ("INT", {"default": 42, "min": 16, "max": 120,
                                       "tooltip": "Longest line; a cue has at most two."}),
            },
            "optional": {
                "mode": (list(MODES), {"default": "sentence", "tooltip": (
                    "sentence: each sentence while spoken; words: a few words at a time as they "
                    "are spoken; karaoke: the line stays and the spoken word is highlighted.")}),
                "style": (style_names(), {"default": "default", "tooltip": (
                    "A caption style from presets/captions.json (font, size, colours, position).")}),
                "aligner": (_aligner_choices(), {"tooltip": (
                    "Times the words of voices that give none (Piper gives its own); not "
                    "installed or none: each sentence's time is shared over its words.")}),
            },
        }

    RETURN_TYPES = ("PODIUM_SUBTITLES",)
    RETURN_NAMES = ("subtitles",)
    FUNCTION = "cue"
    CATEGORY = "Podium/subtitles"

    @reported_stage("subtitles")
    def cue(self, speech, line_chars, mode="sentence", style="default", aligner=None):
        if mode not in MODES:
            raise PodiumError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        captions = Captions(cues_from_speech(speech, line_chars=line_chars), mode=mode,
                            style=load_style(style))
        if mode != "sentence":
            choice = aligner or AUTO_ALIGNER
            align = None if choice == NO_ALIGNER else _LazyAligner(choice)
            captions.sentences, note = sentence_words(speech, align)
            if note:
                log.warning(note)
        return (captions,)
