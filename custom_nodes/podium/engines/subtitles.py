"""Subtitles timed from the real audio: one or more cues per spoken sentence."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import timedelta

import srt

from .speech import Speech


@dataclass
class Cue:
    start: float
    end: float
    text: str  # one or two lines, "\n" between them


def cues_from_speech(speech: Speech, line_chars: int = 42, max_lines: int = 2) -> list[Cue]:
    """Each sentence's audio span becomes its cue; a long sentence is shared out over several
    cues in proportion to their length, so no cue shows more than `max_lines` lines."""
    cues: list[Cue] = []
    for span in speech.sentences:
        lines = textwrap.wrap(span.text, line_chars) or [span.text]
        pages = ["\n".join(lines[i:i + max_lines]) for i in range(0, len(lines), max_lines)]
        total = sum(len(p) for p in pages)
        start = span.start
        for page in pages:
            end = start + (span.end - span.start) * len(page) / total
            cues.append(Cue(start, end, page))
            start = end
    return cues


def to_srt(cues: list[Cue]) -> str:
    """SubRip text of the cues, numbered from 1 (composed by the `srt` library)."""
    ms = lambda seconds: timedelta(milliseconds=round(seconds * 1000))  # nearest, not truncated
    return srt.compose([srt.Subtitle(i, ms(c.start), ms(c.end), c.text)
                        for i, c in enumerate(cues, start=1)], reindex=False)
