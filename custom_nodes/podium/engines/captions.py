"""Captions drawn by libass: sentence, word-by-word pop-on or karaoke, styled from data.

The styles are named presets in presets/captions.json (font, size, colours, outline, position,
max lines). Captions are laid out here as an ASS script at the video's own resolution (pysubs2
writes it), so libass (ffmpeg's `ass` filter) draws them and a player or editor can read the
same `.ass` file; the `.srt` beside it keeps the plain sentence cues.
"""
from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pysubs2

from ..errors import PodiumError
from .speech import WordSpan
from .subtitles import Cue

MODES = ("sentence", "words", "karaoke")
POSITIONS = {"bottom": 2, "middle": 5, "top": 8}  # ASS numpad alignments, centred
STYLES_FILE = Path(__file__).resolve().parent.parent / "presets" / "captions.json"
REFERENCE_HEIGHT = 720  # style sizes are pixels at this frame height
SIDE_MARGIN = 20  # px at REFERENCE_HEIGHT: text never touches the frame's sides


@dataclass(frozen=True)
class CaptionStyle:
    font: str = "DejaVu Sans"
    size: float = 36
    bold: bool = False
    colour: str = "#FFFFFF"
    highlight: str = "#FFD400"
    outline: float = 2.5
    outline_colour: str = "#000000"
    position: str = "bottom"
    max_lines: int = 2
    line_chars: int = 42
    words_per_cue: int = 3
    margin_v: float = 36


@dataclass
class Captions:
    """What the Subtitles node hands the encoder: the sentence cues (the .srt) and every
    sentence's timed words, drawn in `mode` with `style` once the frame's size is known."""

    cues: list[Cue]
    sentences: list[list[WordSpan]] = field(default_factory=list)
    mode: str = "sentence"
    style: CaptionStyle = field(default_factory=CaptionStyle)


def style_names() -> list[str]:
    return sorted(_styles())


def load_style(name: str) -> CaptionStyle:
    """The named preset; one line naming the known ones when there is no such style."""
    styles = _styles()
    if name not in styles:
        raise PodiumError(f"unknown caption style {name!r}; choose one of: {', '.join(sorted(styles))}")
    return styles[name]


def _styles() -> dict[str, CaptionStyle]:
    data = json.loads(STYLES_FILE.read_text(encoding="utf-8"))["styles"]
    styles = {name: CaptionStyle(**fields) for name, fields in data.items()}
    for name, style in styles.items():
        if style.position not in POSITIONS or style.max_lines < 1 or style.words_per_cue < 1:
            raise PodiumError(f"caption style {name!r} in {STYLES_FILE.name} is invalid: position must "
                              f"be one of {', '.join(POSITIONS)}, max_lines and words_per_cue at least 1")
    return styles


def pages(words: list[WordSpan], style: CaptionStyle) -> list[list[list[WordSpan]]]:
    """A sentence's words wrapped into lines of at most `line_chars` and grouped into pages of
    at most `max_lines` lines (what stays on screen together)."""
    lines: list[list[WordSpan]] = []
    for word in words:
        if lines and len(" ".join(w.text for w in lines[-1] + [word])) <= style.line_chars:
            lines[-1].append(word)
        else:
            lines.append([word])
    return [lines[i:i + style.max_lines] for i in range(0, len(lines), style.max_lines)]


def to_ass(captions: Captions, size: tuple[int, int],
           margins: Optional[tuple[int, int]] = None) -> str:
    """The captions as an ASS script at `size` (width, height); `margins`: pixels on the left
    and right to keep clear (a picture-in-picture box on the captions' side)."""
    if captions.mode not in MODES:
        raise PodiumError(f"caption mode must be one of {', '.join(MODES)}, not {captions.mode!r}")
    width, height = size
    style = captions.style
    scale = height / REFERENCE_HEIGHT
    subs = pysubs2.SSAFile()
    subs.info.update({"PlayResX": str(width), "PlayResY": str(height), "WrapStyle": "0",
                      "ScaledBorderAndShadow": "yes"})
    side = round(SIDE_MARGIN * scale)
    left, right = margins or (0, 0)
    subs.styles["Default"] = pysubs2.SSAStyle(
        fontname=style.font, fontsize=round(style.size * scale), bold=style.bold,
        primarycolor=_colour(style.colour), secondarycolor=_colour(style.highlight),
        outlinecolor=_colour(style.outline_colour), backcolor=pysubs2.Color(0, 0, 0, 128),
        outline=style.outline * scale, shadow=0, alignment=pysubs2.Alignment(POSITIONS[style.position]),
        marginl=max(side, left), marginr=max(side, right), marginv=round(style.margin_v * scale))
    for start, end, text in _events(captions):
        subs.events.append(pysubs2.SSAEvent(start=round(start * 1000), end=round(end * 1000), text=text))
    return subs.to_string("ass")


def _events(captions: Captions):
    """(start, end, ASS text) of every caption, in time order."""
    if captions.mode == "sentence" or not any(captions.sentences):
        for cue in captions.cues:
            yield cue.start, cue.end, "\\N".join(_escape(line) for line in cue.text.split("\n"))
        return
    style = captions.style
    for words in captions.sentences:
        for page in pages(words, style):
            flat = [w for line in page for w in line]
            if captions.mode == "karaoke":
                yield from _karaoke(page, flat, _colour_tag(style.highlight))
            else:
                yield from _pop_on(flat, style)


def _karaoke(page, flat: list[WordSpan], highlight: str):
    """The page stays up from its first word to its last; each word in turn in the highlight
    colour, from its start until the next word starts."""
    for i, word in enumerate(flat):
        end = flat[i + 1].start if i + 1 < len(flat) else word.end
        lines, k = [], 0
        for line in page:
            texts = []
            for w in line:
                texts.append(f"{{\\c{highlight}}}{_escape(w.text)}{{\\r}}" if k == i else _escape(w.text))
                k += 1
            lines.append(" ".join(texts))
        yield word.start, max(end, word.start + 0.01), "\\N".join(lines)


def _pop_on(flat: list[WordSpan], style: CaptionStyle):
    """A few words at a time (`words_per_cue`), each group up until the next one starts."""
    groups = [flat[i:i + style.words_per_cue] for i in range(0, len(flat), style.words_per_cue)]
    for i, group in enumerate(groups):
        end = groups[i + 1][0].start if i + 1 < len(groups) else group[-1].end
        text = " ".join(w.text for w in group)
        lines = textwrap.wrap(text, style.line_chars) or [text]
        yield group[0].start, max(end, group[0].start + 0.01), "\\N".join(_escape(line) for line in lines)


def _escape(text: str) -> str:
    """Plain text as ASS text: braces start override blocks and a backslash starts a code."""
    return text.replace("\\", "\u29f5").replace("{", "(").replace("}", ")")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    if len(value) != 6:
        raise PodiumError(f"caption colour {hex_colour!r} must look like #RRGGBB")
    try:
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    except ValueError:
        raise PodiumError(f"caption colour {hex_colour!r} must look like #RRGGBB") from None


def _colour(hex_colour: str) -> pysubs2.Color:
    return pysubs2.Color(*_rgb(hex_colour))


def _colour_tag(hex_colour: str) -> str:
    r, g, b = _rgb(hex_colour)
    return f"&H{b:02X}{g:02X}{r:02X}&"
