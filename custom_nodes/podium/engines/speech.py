"""Speech: narration audio with the exact place of every sentence in it.

Every later stage times itself from this (subtitles, slide bullets, lip sync, frame counts),
so the spans are sample-exact positions in the audio actually produced, never estimates.
"""
from __future__ import annotations

import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PodiumError


@dataclass
class SentenceSpan:
    text: str
    segment: int
    start: float  # seconds from the start of the whole narration
    end: float


@dataclass
class PhoneSpan:
    """One phoneme as the voice spoke it (Piper's alignments; espeak IPA), in seconds."""

    phoneme: str
    start: float
    end: float


@dataclass
class WordSpan:
    """One spoken word, timed from the same alignments as the phonemes (captions, reveals)."""

    text: str
    start: float
    end: float


@dataclass
class Speech:
    """Mono float32 audio in [-1, 1] plus where each segment and sentence lies in it, and,
    when the voice gives alignments (Piper), every phoneme and word: the one timing source."""

    samples: np.ndarray
    sample_rate: int
    sentences: list[SentenceSpan]
    segment_bounds: list[tuple[float, float]]
    phones: list[PhoneSpan] = field(default_factory=list)
    words: list[WordSpan] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


class SpeechBuilder:
    """Appends sentence audio with pauses and records spans as it goes."""

    def __init__(self, sample_rate: int, pause_s: float = 0.3, lead_s: float = 0.25):
        self.sample_rate = sample_rate
        self._pause = np.zeros(int(round(pause_s * sample_rate)), np.float32)
        self._lead = np.zeros(int(round(lead_s * sample_rate)), np.float32)
        self._chunks: list[np.ndarray] = [self._lead]
        self._length = len(self._lead)
        self._sentences: list[SentenceSpan] = []
        self._segments: list[tuple[float, float]] = []
        self._phones: list[PhoneSpan] = []
        self._words: list[WordSpan] = []

    def _append(self, chunk: np.ndarray) -> None:
        self._chunks.append(chunk)
        self._length += len(chunk)

    def _now(self) -> float:
        return self._length / self.sample_rate

    def add_sentence(self, text: str, audio: np.ndarray, phones: list[PhoneSpan] | None = None,
                     words: list[WordSpan] | None = None) -> None:
        """Append a sentence; `phones` and `words` are timed from the sentence's own start."""
        if self._sentences:
            self._append(self._pause)
        start = self._now()
        self._append(np.asarray(audio, np.float32).reshape(-1))
        self._sentences.append(SentenceSpan(text, len(self._segments), start, self._now()))
        self._phones += [PhoneSpan(p.phoneme, start + p.start, start + p.end) for p in phones or ()]
        self._words += [WordSpan(w.text, start + w.start, start + w.end) for w in words or ()]

    def end_segment(self, hold_s: float = 0.0) -> None:
        """Close the current segment: it spans from the previous one's end to now; `hold_s` of
        silence first when it said nothing (a slide shown without narration)."""
        start = self._segments[-1][1] if self._segments else 0.0
        if hold_s > 0 and not any(s.segment == len(self._segments) for s in self._sentences):
            self._append(np.zeros(int(round(hold_s * self.sample_rate)), np.float32))
        self._segments.append((start, self._now()))

    def build(self) -> Speech:
        self._append(self._lead)  # a breath at the end, so the last word is not clipped
        if self._segments:
            self._segments[-1] = (self._segments[-1][0], self._now())
        return Speech(np.concatenate(self._chunks), self.sample_rate, self._sentences, self._segments,
                      self._phones, self._words)


def finished(builder: SpeechBuilder, script, empty: str) -> Speech:
    """The voice's speech, or `empty` (one line) when the script gave neither words nor pauses."""
    speech = builder.build()
    if not speech.sentences and not any(seg.hold > 0 for seg in script.segments):
        raise PodiumError(empty)
    return speech


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Mono audio at another rate, band-limited (soxr's high quality: no aliasing, unlike
    linear interpolation); float32, about len * rate_out / rate_in samples."""
    x = np.asarray(samples, np.float32).reshape(-1)
    if rate_in == rate_out or not len(x):
        return x
    import soxr

    return soxr.resample(x, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV (what ffmpeg and every player read)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
