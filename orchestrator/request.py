"""One render request, typed: the single source of every render option.

`podium generate` parses its command line into a `RenderRequest` (its options are made from
these fields: orchestrator/options.py), the API validates `JobRequest.options` as
`RenderOptions` (its OpenAPI schema comes from them), the service hands a child render the
request as a JSON file (`podium generate --request job.json`), and the render code
(generate.py, soundtrack.py, ...) reads the request. A new option is one field here: its
type, default, bounds and help; `Cli(...)` beside it says how the command line shows it.

How a process runs (--force, --yes, --quiet, --progress-json, --report, --server, --config)
is not part of a request: those are the command line's own flags (orchestrator/cli/main.py).
Pure (pydantic and the script parser): the service imports it and never imports torch.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer,
                      WithJsonSchema, model_validator)

from orchestrator.options import Cli, parse_size

DEFAULT_VOICE = "piper-en_US-joe-medium"
LONG_MINUTES, LONG_SEGMENTS = 30, 500  # a render longer than this asks for --yes first (the API: refused)
WORDS_PER_S = 2.5  # 150 words a minute: what a narrator's pace gives, for the estimates
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@functools.lru_cache(maxsize=1)
def preset_names() -> tuple[str, ...]:
    from orchestrator.render import presets

    order, _ = presets.load_presets()
    return ("auto", *order)


def _no_controls(value: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"must not contain control characters (U+{ord(found.group()):04X} at "
                         f"character {found.start() + 1}): give plain text")
    return value


def _profile_name(value: Optional[str]) -> Optional[str]:
    from orchestrator.profiles.profile import NAME

    if value is not None and not NAME.match(value):
        raise ValueError("must be a profile's name (1-64 letters, digits, '-' or '_'): "
                         "`podium profile list` shows them")
    return value


def _known_preset(value: str) -> str:
    if value not in preset_names():
        raise ValueError(f"unknown preset {value!r}: choose one of {', '.join(preset_names())}")
    return value


def _known_caption_style(value: str) -> str:
    from podium.engines.captions import style_names

    if value not in style_names():
        raise ValueError(f"unknown caption style {value!r}: choose one of {', '.join(style_names())}")
    return value


def _size(value):
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = f"{value[0]}x{value[1]}"
    return parse_size(value)


# Types shared by the request and the API's JobRequest (each carries its own checks).
Line = Annotated[str, AfterValidator(_no_controls)]  # free text for a prompt: no NUL, no control characters
Mode = Literal["direct", "guided"]
Preset = Annotated[str, AfterValidator(_known_preset)]
Topic = Annotated[Line, Field(max_length=1000)]
Size = Annotated[tuple[int, int], BeforeValidator(_size),
                 PlainSerializer(lambda size: f"{size[0]}x{size[1]}", return_type=str),
                 WithJsonSchema({"type": "string", "pattern": r"^\d+x\d+$",
                                 "description": "WxH, each side 64-4096 and even"})]
Seconds = Annotated[float, Field(allow_inf_nan=False)]
Decibels = Annotated[float, Field(allow_inf_nan=False)]

PRESET_HELP = ("auto (default): the best preset whose models are installed and that fits the free "
               "GPU memory; draft: CPU only, nothing to download; fast: + Wav2Lip; balanced/quality: "
               "+ cloned voice, drawn presenter, upscaling; cinema: ComfyUI servers only, an "
               "audio-driven video model (workflows/presets.yaml)")


class RenderOptions(BaseModel):
    """The options an API client may set too (`JobRequest.options`), each named as the
    `podium generate` option of the same name."""

    model_config = ConfigDict(extra="forbid")
    presenter_prompt: Annotated[Line, Field(max_length=2000, description=(
        "what the drawn presenter looks like (when no --image; with a --profile that has a LoRA, "
        "drawn as that person)")), Cli(metavar="TEXT")] = ""
    voice_ref_text: Annotated[Line, Field(max_length=2000, description="exactly what --voice-ref says"),
                              Cli(metavar="TEXT")] = ""
    seed: Annotated[int, Field(ge=0, le=2**31 - 1, description=(
        "seed for the drawn presenter and the cloned voice: the same seed gives the same result")),
        Cli()] = 0
    subtitles: Annotated[Literal["none", "srt", "burn"], Field(description=(
        "srt: a .srt file beside the video (default); burn: drawn into the picture and the .srt "
        "too; none")), Cli()] = "srt"
    captions: Annotated[Literal["sentence", "words", "karaoke"], Field(description=(
        "sentence: each sentence while it is spoken (default); words: a few words at a time as "
        "they are spoken; karaoke: the line stays and the spoken word is highlighted (a .ass "
        "file beside the .srt; burned with --subtitles burn)")), Cli()] = "sentence"
    caption_style: Annotated[str, AfterValidator(_known_caption_style), Field(description=(
        "a caption style (font, size, colours, position) from the pack's presets/captions.json: "
        "default, bold, top, shorts")), Cli(metavar="NAME")] = "default"
    fps: Annotated[int, Field(ge=1, le=120, description="frames per second"), Cli()] = 25
    size: Annotated[Size, Field(description="video size"), Cli(metavar="WxH")] = (1280, 720)
    crossfade: Annotated[Seconds, Field(ge=0, le=5, description=(
        "cross-fade between segments (re-encodes the video)")),
        Cli(metavar="SECONDS", unit="seconds")] = 0.0
    # decks and layout
    layout: Annotated[Optional[Literal["full", "pip", "slides"]], Field(description=(
        "full: the presenter is the frame; pip: the slides (the deck's, or the script's) fill it and "
        "the presenter sits in a corner box; slides: no presenter. Default: pip with a deck and "
        "--image, slides with a deck alone, else full")), Cli("layout")] = None
    pip_position: Annotated[Literal["top-right", "top-left", "bottom-right", "bottom-left"], Field(
        description="the presenter's corner (a slide with content there gets another free corner)"),
        Cli("layout")] = "top-right"
    pip_size: Annotated[float, Field(ge=0.05, le=0.6, allow_inf_nan=False, description=(
        "the presenter box's height as a share of the frame's (Paper2Video: 0.167)")),
        Cli("layout", metavar="SHARE")] = 0.25
    pip_shape: Annotated[Literal["square", "rounded", "circle"], Field(description="the box's shape"),
                         Cli("layout")] = "rounded"
    pip_border: Annotated[int, Field(ge=0, le=20, description="a light border around the box, px"),
                          Cli("layout", metavar="PX")] = 0
    pip_margin: Annotated[int, Field(ge=0, le=200, description="the box's distance from the frame's edges, px"),
                          Cli("layout", metavar="PX")] = 16
    hold: Annotated[Seconds, Field(ge=0.5, le=60, description=(
        "how long a deck page without notes stays up (silent)")),
        Cli("layout", metavar="SECONDS", unit="seconds")] = 4.0
    # guided mode
    duration: Annotated[Seconds, Field(gt=0, le=4 * 3600, description="target length of the narration"),
                        Cli("guided", metavar="SECONDS", unit="seconds", demo=False)] = 60
    language: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9 ()_-]{1,39}$", description=(
        "language of the narration: a code (en, pt-BR) or a name (German)")), Cli("guided", demo=False)] = "en"
    audience: Annotated[Line, Field(max_length=300, description="who it is for, e.g. 'first-year students'"),
                        Cli("guided", demo=False)] = ""
    tone: Annotated[Line, Field(max_length=300, description="e.g. 'friendly', 'formal'"),
                    Cli("guided", demo=False)] = ""
    speakers: Annotated[Line, Field(max_length=300, pattern=r"^[^\n\r]*$", description=(
        "names for a dialogue; give each a voice with --speaker-voice")),
        Cli("guided", metavar="A,B", demo=False)] = ""
    llm_model: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$",
                                    description="Ollama model"), Cli("guided", metavar="NAME", demo=False)] = "llama3.2"


class RenderRequest(RenderOptions):
    """Everything one render takes: what `podium generate` parses, what a job file holds.
    Paths are as the user gave them (relative to where the render runs)."""

    mode: Annotated[Mode, Field(description=(
        "direct: you give the narration (default); guided: a local LLM (Ollama) writes it from "
        "--topic")), Cli("main", demo=False)] = "direct"
    text: Annotated[Optional[str], Field(description="direct: the narration itself"),
                    Cli("source", demo=False)] = None
    script: Annotated[Optional[str], Field(description="direct: a .txt/.md script or a Podium script .json"),
                      Cli("source", metavar="FILE", demo=False)] = None
    topic: Annotated[Optional[Topic], Field(description="guided: what the video is about"),
                     Cli("source", demo=False)] = None
    out: Annotated[Optional[str], Field(description="where to write the video"),
                   Cli("main", metavar="FILE.mp4")] = None
    deck: Annotated[Optional[str], Field(description=(
        "a slide deck (.pptx, .pdf) to narrate: each slide's speaker notes are its narration (a PDF "
        "takes --notes, or --mode guided writes them); `[next]` in notes splits a slide's steps")),
        Cli("layout", metavar="FILE", demo=False)] = None
    notes: Annotated[Optional[str], Field(description=(
        "the deck's narration as a file: one section per slide, '---' lines between them")),
        Cli("layout", metavar="FILE.md", demo=False)] = None
    timeline: Annotated[Optional[str], Field(description=(
        "also write the edit (.otio; .fcpxml or .edl through OpenTimelineIO's adapters), its media "
        "in NAME_media/ beside it, for DaVinci Resolve, Kdenlive, Premiere...")),
        Cli("main", metavar="FILE.otio", demo=False)] = None
    workflow: Annotated[Optional[str], Field(description="run this graph (API or UI format) instead of "
                                                         "the preset's"),
                        Cli("main", metavar="NAME|FILE", demo=False)] = None
    image: Annotated[Optional[str], Field(description=(
        "portrait to animate (PNG/JPEG/WebP); without it the video shows slides made from the "
        "script")), Cli(metavar="FILE")] = None
    profile: Annotated[Optional[str], AfterValidator(_profile_name), Field(description=(
        "use this profile's portrait, voice sample and transcript (`podium profile create`); with "
        "--presenter-prompt and a LoRA (`podium profile train`) the presenter is drawn with it; the "
        "video's metadata names it and the consent's date")), Cli(metavar="NAME")] = None
    preset: Annotated[Preset, Field(description=PRESET_HELP), Cli(choices=preset_names)] = "auto"
    voice_ref: Annotated[Optional[str], Field(description=(
        "balanced/quality: 5-12 s of the voice to clone (WAV, or anything ffmpeg reads)")),
        Cli(metavar="FILE")] = None
    voice: Annotated[str, Field(description="a Piper voice id from models.yaml, or the path of a .onnx voice"),
                     Cli(metavar="ID|FILE.onnx")] = DEFAULT_VOICE
    speaker_voice: Annotated[list[str], Field(description=(
        "dialogue: the voice (id or .onnx) for a speaker; repeat per speaker")),
        Cli(metavar="NAME=VOICE")] = []
    cache_dir: Annotated[Optional[Path], Field(description=(
        "where finished segments are kept so a rerun resumes (default $PODIUM_CACHE_DIR or the "
        "user cache folder, ~/.cache/podium/segments on Linux)")), Cli(metavar="DIR")] = None
    commercial: Annotated[bool, Field(description=(
        "only models whose license allows commercial use (models.yaml commercial_use); others "
        "are swapped (Wav2Lip -> MuseTalk, F5-TTS -> Piper) and each swap is named")), Cli()] = False
    ollama_host: Annotated[str, Field(
        default_factory=lambda: os.environ.get("OLLAMA_HOST", "http://127.0.0.1:11434"),
        description="Ollama server (default $OLLAMA_HOST or http://127.0.0.1:11434)"),
        Cli("guided", metavar="URL", demo=False)]
    llm_timeout: Annotated[Seconds, Field(gt=0, le=86400, description="how long to wait for the model"),
                           Cli("guided", metavar="SECONDS", unit="seconds", demo=False)] = 300
    # the soundtrack
    music: Annotated[Optional[str], Field(description=(
        "music under the narration: an audio file (WAV, FLAC, MP3, OGG, M4A, ...), looped or "
        "trimmed to the video; auto: generated for it from the script's music prompt "
        "(workflows/music.json, needs the music model)")), Cli("soundtrack", metavar="FILE|auto")] = None
    music_prompt: Annotated[Line, Field(max_length=2000, description=(
        "with --music auto: what the music should be (default: the script's [music: ...] / "
        "\"music\", else calm background music)")), Cli("soundtrack", metavar="TEXT")] = ""
    music_volume: Annotated[Decibels, Field(description=(
        "the music's level in the pauses, in dB relative to the voice")),
        Cli("soundtrack", metavar="DB")] = -8.0
    duck: Annotated[Decibels, Field(description="how far the music drops while someone speaks, in dB"),
                    Cli("soundtrack", metavar="DB")] = 12.0
    loudness: Annotated[Decibels, Field(description=(
        "integrated loudness of the finished audio, true peak at most -1 dBTP (-16: online video; "
        "-23: broadcast)")), Cli("soundtrack", metavar="LUFS")] = -16.0
    sfx: Annotated[list[str], Field(description=(
        "the sound for the script's [sfx: NAME] cues (repeat per sound); auto: generate those "
        "without a file (workflows/sfx.json)")), Cli("soundtrack", metavar="NAME=FILE|auto")] = []

    @model_validator(mode="after")
    def _one_source(self) -> "RenderRequest":
        given = [flag for flag, value in (("text", self.text), ("script", self.script)) if value is not None]
        if len(given) > 1:
            raise ValueError("give the narration once: text or script, not both")
        if self.deck is not None and given:
            raise ValueError("a deck brings its own narration (its notes, or --notes): drop text/script")
        if self.notes is not None and self.deck is None:
            raise ValueError("notes go with a deck: give --deck too")
        if self.profile is not None and self.image is not None:
            raise ValueError("a profile brings its portrait: give --profile or --image, not both")
        if self.layout == "full" and self.deck is not None:
            raise ValueError("a deck is shown with layout pip or slides, not full")
        return self

    def chosen_layout(self) -> str:
        """The layout asked for, or the default for what was given."""
        if self.layout is not None:
            return self.layout
        if self.deck is not None:
            return "pip" if self.image else "slides"
        return "full"

    def to_file(self, path: Path) -> Path:
        """The request as JSON at `path` (temp name, then rename): what a child render reads."""
        from podium.files import atomic_write_text

        atomic_write_text(Path(path), self.model_dump_json(indent=1))
        return Path(path)


def narration_length(script) -> tuple[float, int, int]:
    """(estimated minutes of narration, segments, words) of a parsed script."""
    words = sum(len(s.split()) for seg in script.segments for s in seg.sentences)
    return words / WORDS_PER_S / 60, len(script.segments), words


def too_long(script) -> Optional[str]:
    """How long the script is, when it is more than a render takes without asking; else None."""
    minutes, count, words = narration_length(script)
    if minutes <= LONG_MINUTES and count <= LONG_SEGMENTS:
        return None
    return f"about {minutes:.0f} min of narration in {count} segments ({words} words)"
