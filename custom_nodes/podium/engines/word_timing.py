"""Every spoken word's time, for every voice: the voice's own alignments (Piper), else a
Whisper model through transformers (word timestamps), else the sentence's time shared out
over its words by length (and one line saying so).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PodiumError
from .alignment import PUNCTUATION
from .script import clean_text
from .speech import Speech, WordSpan, resample

log = logging.getLogger("podium.word_timing")
WHISPER_RATE = 16000
SPREAD_NOTE = ("word timings: the voice gives none and no Whisper model is installed; each "
               "sentence's time is shared over its words by length")


def text_words(sentence: str) -> list[str]:
    """The words a sentence is read as (punctuation around them dropped)."""
    strip = "".join(PUNCTUATION)
    return [w for w in (w.strip(strip) for w in clean_text(sentence).split()) if w]


def spread(names: list[str], start: float, end: float) -> list[WordSpan]:
    """`names` over [start, end] in proportion to their length, a space's share between them."""
    unit = (end - start) / max(sum(len(n) + 1 for n in names), 1)
    out, at = [], start
    for name in names:
        out.append(WordSpan(name, at, at + len(name) * unit))
        at += (len(name) + 1) * unit
    return out


def sentence_words(speech: Speech, aligner=None) -> tuple[list[list[WordSpan]], Optional[str]]:
    """Each sentence's timed words (seconds in the narration) and a note when they were guessed.
    The voice's words are used where it gave them; other sentences go to `aligner`
    (samples, rate -> WordSpans from 0), else are spread by length."""
    out, guessed = [], False
    for span in speech.sentences:
        mine = [w for w in speech.words if span.start - 1e-6 <= w.start < span.end]
        names = text_words(span.text)
        if mine and len(mine) != len(names):  # "3.14" spoken as several words: the script's words
            mine = fit(names, [WordSpan(w.text, w.start - span.start, w.end - span.start) for w in mine],
                       span.start, span.end)
        if not mine and names and aligner is not None:
            audio = speech.samples[int(span.start * speech.sample_rate):int(span.end * speech.sample_rate)]
            mine = fit(names, aligner(audio, speech.sample_rate), span.start, span.end)
        if not mine and names:
            mine, guessed = spread(names, span.start, span.end), True
        out.append(mine)
    return out, (SPREAD_NOTE if guessed else None)


def fit(names: list[str], heard: list[WordSpan], start: float, end: float) -> list[WordSpan]:
    """The script's words timed by what the aligner heard (seconds from the sentence's start):
    one to one when the counts agree, else spread over the heard stretch; always inside
    [start, end] and in order."""
    if not heard:
        return []
    clamp = lambda t: min(max(start + t, start), end)
    if len(heard) == len(names):
        timed = [WordSpan(n, clamp(h.start), clamp(h.end)) for n, h in zip(names, heard)]
    else:
        timed = spread(names, clamp(heard[0].start), clamp(heard[-1].end))
    at = start
    for word in timed:  # in order, never overlapping the one before
        word.start = max(word.start, at)
        word.end = max(word.end, word.start)
        at = word.end
    return timed


class WhisperAligner:
    """Word times heard by a Whisper checkpoint in `folder` (transformers' speech recognition
    pipeline with word timestamps: cross-attention alignment, no text needed)."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        folder = Path(folder)
        needed = ("config.json", "preprocessor_config.json", "generation_config.json")
        missing = [n for n in needed if not (folder / n).is_file()]
        if missing or not any((folder / n).is_file() for n in ("tokenizer.json", "vocab.json")):
            raise PodiumError(f"{folder} is not a whole Whisper checkpoint (missing "
                              f"{', '.join(missing) or 'its tokenizer'}): word timings need them")
        from transformers import pipeline

        self._pipe = pipeline("automatic-speech-recognition", model=str(folder), device=device)

    def __call__(self, samples: np.ndarray, rate: int) -> list[WordSpan]:
        audio = resample(samples, rate, WHISPER_RATE)
        result = self._pipe({"raw": audio, "sampling_rate": WHISPER_RATE}, return_timestamps="word")
        words = []
        for chunk in result.get("chunks", []):
            start, end = chunk["timestamp"]
            text = chunk["text"].strip()
            if text and start is not None:
                words.append(WordSpan(text, float(start), float(end if end is not None else start)))
        return words


def find_aligner(folders: list[Path]) -> Optional[WhisperAligner]:
    """The first whole Whisper checkpoint among `folders`, loaded; None when there is none
    (or transformers is missing)."""
    for folder in folders:
        try:
            return WhisperAligner(folder)
        except (PodiumError, ImportError):
            continue
    return None
