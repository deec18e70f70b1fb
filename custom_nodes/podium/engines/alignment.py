"""Phoneme and word timings from Piper's alignments: the one timing source for the mouth,
word captions and slide reveals.

Piper (>= 1.3, voice loaded with `include_alignments`) says how many audio samples each phoneme
of a chunk took (espeak IPA, one symbol each, the padding after it included; they add up to the
chunk's length). Spans are kept as spoken, symbols like ' ', ',' and the stress mark included;
words are the runs between spaces and punctuation, named by the sentence's own words when the
counts agree (numbers and abbreviations are spoken as several words: then by their phonemes).
"""
from __future__ import annotations

from typing import Iterable, Optional

from .speech import PhoneSpan, WordSpan

BOUNDARY = frozenset("^$_ ")  # start, end, padding, word space
PUNCTUATION = frozenset(",.;:!?¡¿—–…\"'()")
MODIFIERS = frozenset("ˈˌːˑ")  # stress and length marks: not sounds of their own


def chunk_phones(alignments: Optional[Iterable], n_samples: int, rate: int, offset: float) -> list[PhoneSpan]:
    """One chunk's PhoneSpans from `(phoneme, num_samples)` alignments, starting at `offset`
    seconds; stretched to the chunk's real length when the counts do not add up to it."""
    pairs = [(a.phoneme, int(a.num_samples)) for a in alignments or ()]
    total = sum(n for _, n in pairs)
    if not pairs or total <= 0:
        return []
    scale = n_samples / total
    spans, at = [], 0
    for phoneme, n in pairs:
        start = offset + at * scale / rate
        at += n
        spans.append(PhoneSpan(phoneme, start, offset + at * scale / rate))
    return spans


def is_sound(phoneme: str) -> bool:
    """A phoneme the mouth says (not a boundary, pause or stress mark)."""
    return bool(phoneme) and phoneme not in BOUNDARY and phoneme not in PUNCTUATION and phoneme not in MODIFIERS


def words(phones: list[PhoneSpan], text: str = "") -> list[WordSpan]:
    """The words in `phones`: runs of sounds between spaces and punctuation, each from its first
    sound's start to its last one's end, named from `text` when the counts agree."""
    runs: list[list[PhoneSpan]] = []
    current: list[PhoneSpan] = []
    for phone in phones:
        if phone.phoneme in BOUNDARY or phone.phoneme in PUNCTUATION:
            if current:
                runs.append(current)
            current = []
        elif is_sound(phone.phoneme):
            current.append(phone)
    if current:
        runs.append(current)
    names = [w.strip("".join(PUNCTUATION)) for w in text.split()]
    names = [n for n in names if n]
    if len(names) != len(runs):
        names = ["".join(p.phoneme for p in run) for run in runs]
    return [WordSpan(name, run[0].start, run[-1].end) for name, run in zip(names, runs)]
