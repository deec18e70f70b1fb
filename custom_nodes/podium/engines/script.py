"""Scripts: what the presenter says, cut into sentences and segments.

A segment is the unit of work later stages parallelise (one graph run each), so it is cut at
sentence boundaries and kept short enough to render quickly; a sentence is the unit of
subtitles and slide bullets, so its timing comes from the real audio.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Optional

from pydantic import ValidationError

from ..errors import PodiumError
from .script_schema import FILE_SHAPE, ScriptFile, ScriptFormatError, format_error

# Words that end in a period without ending a sentence.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "fig",
    "no", "vol", "approx", "dept", "inc", "ltd", "co", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "cf", "al",
}
# A candidate boundary: terminal punctuation (and closing quotes/brackets), then space.
_HEADING = re.compile(r"#{1,6}\s")  # Markdown: "## Slide title", not "#1 rule" or "#hashtag"
_BOUNDARY = re.compile(r"""([.!?…]+["'”’)\]]*)\s+""")


@dataclass
class Segment:
    """One stretch of narration: a few sentences, optionally with its own slide."""

    sentences: list[str]
    title: str = ""
    bullets: list[str] = field(default_factory=list)
    speaker: str = ""

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


@dataclass
class Script:
    """A whole narration: a title, an optional stage description, and its segments."""

    title: str
    segments: list[Segment]
    stage: str = ""

    @property
    def sentences(self) -> list[str]:
        return [s for seg in self.segments for s in seg.sentences]

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "stage": self.stage,
            "segments": [
                {"text": s.text, "title": s.title, "bullets": s.bullets, "speaker": s.speaker}
                for s in self.segments
            ],
        }


def clean_text(text: str) -> str:
    """`text` without control characters (NUL, escape codes, lone surrogates), which no voice
    can speak and which break the tools downstream; tabs, line breaks and the like stay."""
    if str.isprintable(text):  # (a TypeError for what is not text, as before)
        return text
    return "".join(c for c in text if c.isspace() or unicodedata.category(c) not in ("Cc", "Cs"))


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping abbreviations, initials and decimals whole."""
    text = re.sub(r"\s+", " ", clean_text(text)).strip()
    if not text:
        return []
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        before = text[start:match.end(1)]
        last_word = re.split(r"[\s(\"'“‘]", before)[-1].rstrip(".").lower()
        following = text[match.end():match.end() + 1]
        # "no" abbreviates only before a number: "No. 5" but "No. It is not."
        abbreviation = last_word in _ABBREVIATIONS and (last_word != "no" or following.isdigit())
        if match.group(1).startswith(".") and (abbreviation or re.fullmatch(r"[a-z]", last_word)):
            continue  # "Dr. Smith", "J. R. R. Tolkien"
        if following and following.islower():
            continue  # "... etc. and more" - a lower-case start is not a new sentence
        sentences.append(before.strip())
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _first_words(sentence: str, limit: int = 6) -> str:
    words = re.sub(r"[.!?…:;,]+$", "", sentence).split()
    return " ".join(words[:limit]) + ("…" if len(words) > limit else "")


def split_script(text: str, max_words: int = 60, title: str = "") -> Script:
    """Cut text into segments at sentence boundaries.

    Blank lines start a new segment; otherwise sentences are packed until a segment would pass
    `max_words`. A leading Markdown heading (`# Title`) becomes the title; `## Heading` lines
    title the segments that follow them (they become slide titles).
    """
    if max_words < 1:
        raise PodiumError("max_words must be at least 1")
    lines = clean_text(text).replace("\r\n", "\n").split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if not title and first is not None and re.match(r"#\s", lines[first]):
        title, lines = lines[first][1:].strip(), lines[first + 1:]
    segments: list[Segment] = []
    heading, body = "", []

    def close_block() -> None:
        """Pack the sentences gathered under the current heading into segments."""
        current: list[str] = []
        for sentence in split_sentences(" ".join(body)):
            words = len(sentence.split())
            if current and sum(len(s.split()) for s in current) + words > max_words:
                segments.append(Segment(current, title=heading))
                current = []
            current.append(sentence)
        if current:
            segments.append(Segment(current, title=heading))
        body.clear()

    for line in lines:
        if _HEADING.match(line):
            close_block()
            heading = line.lstrip("#").strip()
        elif not line.strip():
            close_block()
        else:
            body.append(line)
    close_block()
    if not segments:
        raise PodiumError(
            "the script is empty: give the narration, at least one sentence"
        )
    if not title:
        title = _first_words(segments[0].sentences[0])
    for segment in segments:
        segment.title = segment.title or title
        segment.bullets = [_first_words(s, 9) for s in segment.sentences]
    return Script(title=title, segments=segments)


def parse_script(raw: str, max_words: int = 60, title: str = "",
                 as_json: Optional[bool] = None) -> Script:
    """Text the user wrote: plain text / Markdown, or Podium's script JSON.

    `as_json` None: JSON when the text starts with "{", or with "[" and parses as JSON (so a
    top-level array is refused, not spoken); True: it must be the JSON (a `.json` file).
    Schema problems are a ScriptFormatError that names the field (`segments[2].bullets`).
    """
    head = raw.lstrip()[:1]
    if as_json is None:
        as_json = head == "{" or (head == "[" and _is_json(raw))
    if not as_json:
        return split_script(raw, max_words=max_words, title=title)
    try:
        data = json.loads(raw)
    except ValueError as err:
        raise ScriptFormatError(f"is not valid JSON ({err}); a Podium script JSON is {FILE_SHAPE}") from None
    try:
        parsed = ScriptFile.model_validate(data)
    except ValidationError as err:
        raise format_error(err) from None
    segments = []
    for item in parsed.segments:
        sentences = split_sentences(item.text)
        if sentences:
            segments.append(Segment(sentences, title=item.title, bullets=list(item.bullets),
                                    speaker=item.speaker))
    if not segments:
        raise ScriptFormatError("no segment has any narration (\"text\")", "segments")
    title = title or parsed.title or _first_words(segments[0].sentences[0])
    for segment in segments:
        segment.title = segment.title or title
        segment.bullets = segment.bullets or [_first_words(s, 9) for s in segment.sentences]
    return Script(title=title, segments=segments, stage=parsed.stage)


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
        return True
    except ValueError:
        return False
