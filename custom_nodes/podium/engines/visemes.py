"""Phonemes to mouth shapes over time: a few visemes, smoothed the way lips move.

Each phoneme Piper spoke (espeak IPA) maps to one of five visemes (closed, open, wide, round,
teeth) at a strength; each viseme is a target (open, width, teeth). The targets are sampled at
RATE Hz and smoothed with a short Gaussian (coarticulation: a mouth anticipates the next sound and
lingers on the last), then the lips are pressed shut over /m b p/ whatever the neighbours say,
since a bilabial that does not close reads as wrong. Pauses, punctuation and the ends of a
sentence are rest (closed). Without alignments the loudness drives the opening alone.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .alignment import MODIFIERS, PUNCTUATION
from .speech import PhoneSpan, Speech

RATE = 100.0  # samples a second of the mouth track
SMOOTH_S = 0.022  # coarticulation: sigma of the Gaussian over the targets
CLOSE_S = 0.01  # how sharply the lips press together for /m b p/
CLOSE_EARLY = 0.012  # s: the lips meet this much before a bilabial's span and part this much after
QUIET_OPEN = 0.45  # how far a shape opens when spoken softly, as a share of its full opening

# viseme -> (open 0..1, width -1 round .. 1 wide, teeth 0..1)
VISEMES = {
    "rest": (0.0, 0.0, 0.0),
    "closed": (0.0, 0.0, 0.0),
    "open": (1.0, 0.1, 0.5),
    "wide": (0.4, 0.9, 0.8),
    "round": (0.5, -1.0, 0.1),
    "teeth": (0.18, 0.3, 1.0),
}
_GROUPS = {
    ("closed", 1.0): "m b p",
    ("open", 1.0): "a ɑ æ ɒ ʌ ɐ aɪ aʊ",
    ("open", 0.7): "ɛ ə ɜ ɚ ɝ ᵻ ɾ ɫ",
    ("wide", 1.0): "i ɪ e j ɨ",
    ("round", 1.0): "u ʊ w ʍ ɵ",
    ("round", 1.2): "o ɔ ɒː",
    ("round", 0.6): "ɹ ʃ ʒ tʃ dʒ",
    ("teeth", 1.0): "f v θ ð s z",
    ("teeth", 0.8): "t d n l",
    ("open", 0.45): "k ɡ g ŋ h x ʔ",
}
PHONEME_VISEMES: dict[str, tuple[str, float]] = {
    p: key for key, group in _GROUPS.items() for p in group.split()}
BILABIALS = frozenset("mbp")
REST_SYMBOLS = frozenset("^$_") | PUNCTUATION


def viseme_of(phoneme: str) -> Optional[tuple[str, float]]:
    """(viseme, strength) of a phoneme; ("rest", 0) for pauses; None for what takes its
    neighbours' shape (a word space, a stress or length mark)."""
    if phoneme in REST_SYMBOLS:
        return ("rest", 0.0)
    if phoneme == " " or phoneme in MODIFIERS:
        return None
    return PHONEME_VISEMES.get(phoneme, ("open", 0.5))


class MouthTrack:
    """(open, width, teeth) of the mouth at any time of the speech, from its phonemes."""

    def __init__(self, speech: Speech, rate: float = RATE):
        self.rate = rate
        n = max(int(np.ceil(speech.duration * rate)) + 1, 2)
        self.times = np.arange(n) / rate
        if speech.phones:
            targets, closure = _targets(speech.phones, self.times)
        else:
            targets, closure = _loudness_targets(speech, self.times), np.zeros(n, np.float32)
        smooth = np.stack([_gaussian(targets[:, k], SMOOTH_S * rate) for k in range(3)], axis=1)
        press = 1.0 - np.clip(2.0 * _gaussian(closure, CLOSE_S * rate), 0.0, 1.0)
        smooth[:, 0] *= press * (QUIET_OPEN + (1 - QUIET_OPEN) * _loudness(speech, self.times))
        smooth[:, 2] *= press
        smooth[:, 0] = np.clip(smooth[:, 0], 0.0, 1.0)
        self.values = smooth.astype(np.float32)
        self.phones = speech.phones

    def at(self, t: float) -> tuple[float, float, float]:
        """(open, width, teeth) at t seconds, interpolated between samples."""
        x = min(max(t * self.rate, 0.0), len(self.values) - 1.0)
        i = int(x)
        j, a = min(i + 1, len(self.values) - 1), x - i
        v = self.values[i] * (1 - a) + self.values[j] * a
        return float(v[0]), float(v[1]), float(v[2])

    def viseme_at(self, t: float) -> str:
        """The viseme of the phoneme being spoken at t ("rest" in pauses)."""
        for phone in self.phones:
            if phone.start <= t < phone.end:
                shape = viseme_of(phone.phoneme)
                return shape[0] if shape else "rest"
        return "rest"


def _targets(phones: list[PhoneSpan], times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's target (held from the nearest phoneme for spaces and stress marks), and
    1 where a bilabial is spoken."""
    targets = np.full((len(times), 3), np.nan, np.float32)
    closure = np.zeros(len(times), np.float32)
    for phone in phones:
        i, j = np.searchsorted(times, [phone.start, phone.end])
        shape = viseme_of(phone.phoneme)
        if shape is None or j <= i:
            continue
        name, strength = shape
        open_, width, teeth = VISEMES[name]
        targets[i:j] = (open_ * strength, width * min(strength, 1.0), teeth * min(strength, 1.0))
        if phone.phoneme in BILABIALS:
            a, b = np.searchsorted(times, [phone.start - CLOSE_EARLY, phone.end + CLOSE_EARLY])
            closure[a:b] = 1.0
    known = ~np.isnan(targets[:, 0])
    if not known.any():
        return np.zeros_like(targets), closure
    k, here = np.flatnonzero(known), np.arange(len(times))
    pos = np.searchsorted(k, here)
    left, right = k[np.clip(pos - 1, 0, len(k) - 1)], k[np.clip(pos, 0, len(k) - 1)]
    nearest = np.where(np.abs(here - left) <= np.abs(right - here), left, right)
    return targets[nearest], closure


def _loudness_targets(speech: Speech, times: np.ndarray) -> np.ndarray:
    """Without alignments: the mouth opens with the loudness (an open vowel at the loudest)."""
    hop = max(int(speech.sample_rate / RATE), 1)
    frames = len(speech.samples) // hop
    rms = np.sqrt(np.mean(speech.samples[:frames * hop].reshape(-1, hop) ** 2, axis=1)) if frames else np.zeros(1)
    level = np.interp(times * RATE, np.arange(len(rms)), rms / max(float(rms.max()), 1e-6))
    level = np.clip((level - 0.08) / 0.6, 0.0, 1.0)
    return np.stack([level, np.zeros_like(level), 0.5 * level], axis=1).astype(np.float32)


def _loudness(speech: Speech, times: np.ndarray) -> np.ndarray:
    """Loudness 0..1 at each time (RMS over 10 ms, smoothed, 1 at the voice's 95th percentile):
    a louder syllable opens the mouth further."""
    hop = max(int(speech.sample_rate / RATE), 1)
    frames = len(speech.samples) // hop
    if not frames:
        return np.zeros(len(times), np.float32)
    rms = _gaussian(np.sqrt(np.mean(speech.samples[:frames * hop].reshape(-1, hop) ** 2, axis=1)), SMOOTH_S * RATE)
    voiced = rms[rms > 0.01 * max(float(rms.max()), 1e-9)]
    top = float(np.percentile(voiced, 95)) if len(voiced) else 1.0
    level = np.clip(rms / max(top, 1e-9), 0.0, 1.0)
    return np.interp(times * RATE, np.arange(len(level)), level).astype(np.float32)


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return values.astype(np.float32)
    radius = int(3 * sigma) + 1
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    padded = np.pad(values.astype(np.float64), radius, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid").astype(np.float32)
