"""Soundtrack: a music bed under the narration, ducked while someone speaks, and the mix
mastered to a loudness target.

Plain numpy (and soxr for the true-peak meter's oversampling): no torch, so the torch-free
orchestrator mixes with the same code as the PodiumMix node. Loudness is measured by ffmpeg's
EBU R128 meter (`ebur128=peak=true`), the same one a reviewer measures the file with.

Order of work: the track is looped (equal-power cross-fade at a quiet point) or trimmed to the
narration and faded in and out; its level is set relative to the voice; a gain envelope made
from the voice's own audio lowers it while someone speaks (non-causal: it is already down when
the first word starts) and lets it back up in pauses; sound effects go in at their times; the
sum gets one linear gain to the target loudness and a true-peak limiter for the rare peaks
that gain would push over the ceiling.
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import PodiumError, UsageError
from .ffmpeg_exe import find_ffmpeg

FRAME_S = 0.01  # the envelope's resolution: 10 ms frames
SILENCE_DB = -60.0  # dBFS: quieter than this is not music (trimmed from the ends of a track)
AAC_MARGIN_DB = 0.5  # the AAC encode can add this much true peak: the limiter leaves room


@dataclass
class MixSettings:
    """What the user sets: levels in dB, times in seconds."""

    music_volume_db: float = -8.0  # music in the pauses, relative to the voice's level
    duck_db: float = 12.0  # how far the music drops while someone speaks
    loudness_lufs: float = -16.0  # integrated loudness of the final mix
    true_peak_db: float = -1.0  # ceiling of the final mix, dBTP
    fade_in_s: float = 1.5
    fade_out_s: float = 3.0
    loop_crossfade_s: float = 0.5
    attack_s: float = 0.12  # the music is fully down this long before speech starts
    hold_s: float = 0.15  # ... and stays down this long after it stops
    release_s: float = 0.35  # ... then comes back up over this long
    sfx_volume_db: float = -3.0  # a sound effect's level, relative to the voice's

    def check(self) -> "MixSettings":
        if not -40.0 <= self.music_volume_db <= 10.0:
            raise UsageError(f"music volume {self.music_volume_db:g} dB is out of range: give -40 to 10 "
                             "(dB relative to the voice)")
        if not 0.0 <= self.duck_db <= 40.0:
            raise UsageError(f"duck {self.duck_db:g} dB is out of range: give 0 to 40")
        if not -40.0 <= self.loudness_lufs <= -5.0:
            raise UsageError(f"loudness {self.loudness_lufs:g} LUFS is out of range: give -40 to -5 "
                             "(-16 suits online video, -23 broadcast)")
        if not -9.0 <= self.true_peak_db <= 0.0:
            raise UsageError(f"true peak {self.true_peak_db:g} dBTP is out of range: give -9 to 0")
        return self


@dataclass
class SoundCue:
    """A sound effect placed at `time` seconds into the narration."""

    samples: np.ndarray
    time: float


# --- reading audio --------------------------------------------------------------------------

def decode(path: str | Path, rate: int, max_seconds: Optional[float] = None,
           what: str = "music file") -> np.ndarray:
    """Any audio file ffmpeg reads (WAV, FLAC, MP3, OGG, M4A, a video's sound) as mono float32
    at `rate`; at most `max_seconds` of it. A file that is not audio: one-line UsageError.

    Streamed: ffmpeg's output is read a block at a time straight into the result, so a long
    file costs one array of what is asked for, not the whole file twice (a small upload can
    hold hours of silence)."""
    command = [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(path),
               "-vn", "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
               *(["-t", f"{max_seconds:.3f}"] if max_seconds else []), "-f", "f32le", "pipe:1"]
    limit = int(np.ceil(max_seconds * rate)) + rate if max_seconds else None
    with tempfile.TemporaryFile() as log:  # a file, so a chatty ffmpeg cannot block on stderr
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log) as process:
            samples = _read_samples(process.stdout, limit)
            process.stdout.close()
            returncode = process.wait()
        log.seek(0)
        why = log.read().decode(errors="replace").strip().splitlines()
    if returncode and not (limit and len(samples) >= limit):
        reason = why[-1] if why else f"ffmpeg exit {returncode}"
        if "matches no streams" in reason or "0:a:0" in reason:
            reason = "it has no audio stream"
        raise UsageError(f"{what} {path} cannot be read as audio ({reason}): give a WAV, FLAC, MP3, "
                         "OGG or M4A file")
    if not len(samples):
        raise UsageError(f"{what} {path} holds no audio: give a WAV, FLAC, MP3, OGG or M4A file")
    return samples


def _read_samples(stream, limit: Optional[int], block: int = 1 << 18) -> np.ndarray:
    """float32 samples from a pipe: into one preallocated array when the most is known (reading
    stops there), else block by block."""
    if limit is None:
        data = bytearray()
        for piece in iter(lambda: stream.read(block * 4), b""):
            data += piece
        del data[len(data) // 4 * 4:]
        return np.frombuffer(data, np.float32)  # no copy: the array keeps the bytearray
    out = np.empty(limit, np.float32)
    view, filled = memoryview(out).cast("B"), 0
    while filled < len(view):
        got = stream.readinto(view[filled:filled + block * 4])
        if not got:
            break
        filled += got
    view.release()
    out.resize(filled // 4, refcheck=False)  # shrinks in place: no second copy
    return out


# --- levels ---------------------------------------------------------------------------------

def frame_db(x: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level of each frame in dBFS (-120 for digital silence)."""
    n = max(int(round(frame_s * rate)), 1)
    frames = len(x) // n
    if frames == 0:
        return np.full(1, -120.0)
    power = np.mean(np.square(x[:frames * n].reshape(frames, n), dtype=np.float64), axis=1)
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def speech_mask(voice: np.ndarray, rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """Which frames someone speaks in: louder than 35 dB under the voice's loud frames (and
    than -55 dBFS), so breaths and room noise are pauses."""
    levels = frame_db(voice, rate, frame_s)
    loud = np.percentile(levels, 95)
    return levels > max(loud - 35.0, -55.0)


def active_db(x: np.ndarray, rate: int) -> float:
    """The RMS level of a signal over the frames where it sounds (pauses left out)."""
    levels = frame_db(x, rate)
    sounding = levels > max(np.percentile(levels, 95) - 35.0, -70.0)
    if not sounding.any():
        return -120.0
    return float(10.0 * np.log10(np.mean(10.0 ** (levels[sounding] / 10.0))))


# --- the music track ------------------------------------------------------------------------

def trim_silence(x: np.ndarray, rate: int) -> np.ndarray:
    """The track without the silence at its ends (a loop must not pause at every seam)."""
    levels = frame_db(x, rate)
    sounding = np.flatnonzero(levels > SILENCE_DB)
    if not len(sounding):
        raise UsageError("the music is silent: give a track with sound in it")
    n = int(round(FRAME_S * rate))
    return x[sounding[0] * n:(sounding[-1] + 1) * n]


def find_seam(x: np.ndarray, rate: int, overlap: int) -> int:
    """Where the loop leaves the track: its quietest 50 ms in the second half that still has
    `overlap` samples after it, moved to the nearest rising zero crossing."""
    window = max(int(0.05 * rate), 1)
    lo, hi = len(x) // 2, len(x) - overlap - 1
    if hi - lo < window:
        return max(hi, 1)
    energy = np.concatenate([[0.0], np.cumsum(np.square(x[lo:hi + window], dtype=np.float64))])
    power = energy[window:] - energy[:-window]  # each 50 ms window's energy, in O(n)
    best = lo + int(np.argmin(power[:hi - lo]))
    crossings = np.flatnonzero((x[best:best + window - 1] <= 0) & (x[best + 1:best + window] > 0))
    return best + (int(crossings[0]) + 1 if len(crossings) else 0)


def loop_points(music: np.ndarray, rate: int, crossfade_s: float) -> tuple[int, int]:
    """(cross-fade length, seam) of a silence-trimmed track: fit_length's output cross-fades
    at seam, 2*seam, 3*seam, ... (each repetition after the first is `seam` samples long)."""
    overlap = min(int(round(crossfade_s * rate)), len(music) // 4)
    return overlap, find_seam(music, rate, overlap)


def fit_length(music: np.ndarray, rate: int, length: int, crossfade_s: float = 0.5) -> np.ndarray:
    """`music` exactly `length` samples long: trimmed, or looped with an equal-power cross-fade
    (cos/sin gains, so the level holds across the seam) at a quiet point of the track."""
    music = trim_silence(np.asarray(music, np.float32), rate)
    if len(music) >= length:
        return music[:length].copy()
    if len(music) < 0.5 * rate:
        raise UsageError(f"the music is {len(music) / rate:.2f} s long (without its silence): too short "
                         "to loop; give a track of a second or more")
    overlap, seam = loop_points(music, rate, crossfade_s)
    ramp = np.linspace(0.0, np.pi / 2, overlap, endpoint=False, dtype=np.float64) + np.pi / (4 * max(overlap, 1))
    joint = (music[seam:seam + overlap] * np.cos(ramp) + music[:overlap] * np.sin(ramp)).astype(np.float32)
    period = np.concatenate([joint, music[overlap:seam]])
    reps = int(np.ceil(max(length - seam, 0) / len(period)))
    return np.concatenate([music[:seam], *([period] * reps)])[:length]


def fades(x: np.ndarray, rate: int, fade_in_s: float, fade_out_s: float) -> np.ndarray:
    """Raised-cosine fade in and out (in place)."""
    for seconds, at_end in ((fade_in_s, False), (fade_out_s, True)):
        n = min(int(round(seconds * rate)), len(x) // 2)
        if n <= 0:
            continue
        curve = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n, dtype=np.float64))).astype(np.float32)
        if at_end:
            x[-n:] *= curve[::-1]
        else:
            x[:n] *= curve
    return x


# --- ducking --------------------------------------------------------------------------------

def duck_gain(voice: np.ndarray, rate: int, settings: MixSettings) -> tuple[np.ndarray, np.ndarray]:
    """The music's gain curve (frame centres in samples, linear gains; see apply_gain): 1 in
    pauses, -duck_db while someone speaks. The
    mask is widened by `attack_s` before speech (so the music is down at the first word) and
    `hold_s` after it; the gain slides down over attack_s and back up over release_s."""
    mask = speech_mask(voice, rate)
    wide = _widen(mask, int(round(settings.attack_s / FRAME_S)), int(round(settings.hold_s / FRAME_S)))
    target = np.where(wide, -settings.duck_db, 0.0)
    down = settings.duck_db / max(settings.attack_s / FRAME_S, 1.0)
    up = settings.duck_db / max(settings.release_s / FRAME_S, 1.0)
    gain_db = np.empty_like(target)
    # going down: a backward pass (the slide ends where the widened speech starts); coming
    # back up: a forward pass
    level = 0.0
    for i in range(len(target) - 1, -1, -1):
        level = target[i] if target[i] <= level else min(target[i], level + down)
        gain_db[i] = level
    level = gain_db[0]
    for i in range(len(target)):
        level = gain_db[i] if gain_db[i] <= level else min(gain_db[i], level + up)
        gain_db[i] = level
    centres = (np.arange(len(gain_db)) + 0.5) * FRAME_S * rate
    return centres, 10.0 ** (gain_db / 20.0)


def apply_gain(x: np.ndarray, curve: tuple[np.ndarray, np.ndarray], chunk: int = 1 << 20) -> np.ndarray:
    """`x` times a gain curve given at some sample positions (linear in between), a chunk at
    a time so no float64 copy of a long narration is made."""
    centres, gains = curve
    out = np.empty(len(x), np.float32)
    for start in range(0, len(x), chunk):
        stop = min(start + chunk, len(x))
        out[start:stop] = x[start:stop] * np.interp(np.arange(start, stop), centres, gains).astype(np.float32)
    return out


def _widen(mask: np.ndarray, before: int, after: int) -> np.ndarray:
    """True where speech lies within `before` frames ahead or `after` frames behind."""
    out = mask.copy()
    for shift in range(1, before + 1):
        out[:-shift] |= mask[shift:]
    for shift in range(1, after + 1):
        out[shift:] |= mask[:-shift]
    return out


# --- mastering ------------------------------------------------------------------------------

def measure(x: np.ndarray, rate: int) -> tuple[float, float]:
    """(integrated loudness LUFS, true peak dBTP) by ffmpeg's EBU R128 meter."""
    command = [find_ffmpeg(), "-hide_banner", "-nostats", "-nostdin", "-f", "f32le", "-ar", str(rate),
               "-ac", "1", "-i", "pipe:0", "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]
    result = subprocess.run(command, input=np.ascontiguousarray(x, np.float32).tobytes(),
                            capture_output=True)
    return parse_ebur128(result.stderr.decode(errors="replace"))


def measure_file(path: str | Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a media file's first audio stream."""
    command = [find_ffmpeg(), "-hide_banner", "-nostats", "-nostdin", "-i", str(path), "-map", "0:a:0",
               "-af", "ebur128=peak=true:framelog=verbose", "-f", "null", "-"]
    result = subprocess.run(command, capture_output=True)
    return parse_ebur128(result.stderr.decode(errors="replace"))


def parse_ebur128(log: str) -> tuple[float, float]:
    summary = log[log.rfind("Summary:"):]
    loud = re.search(r"I:\s*(-?[\d.]+|-inf)\s*LUFS", summary)
    peak = re.search(r"True peak:\s*Peak:\s*(-?[\d.]+|-inf)\s*dBFS", summary)
    if not loud or not peak:
        raise PodiumError(f"ffmpeg's loudness meter gave no summary: {log.strip()[-300:]}")
    return float(loud.group(1)), float(peak.group(1))


def true_peak_blocks(x: np.ndarray, rate: int, block: int) -> np.ndarray:
    """The largest |sample| of each block, 4x oversampled (BS.1770's true peak), worked out
    a few seconds at a time so memory stays flat."""
    import soxr

    count = -(-len(x) // block)
    peaks = np.zeros(count, np.float32)
    chunk, pad = block * 4096, 256
    for start in range(0, len(x), chunk):
        stop = min(start + chunk, len(x))
        lo, hi = max(start - pad, 0), min(stop + pad, len(x))
        up = np.abs(soxr.resample(x[lo:hi], rate, rate * 4, quality="HQ"))
        blocks = -(-(stop - start) // block)
        over = np.zeros(blocks * block * 4, np.float32)
        core = up[(start - lo) * 4:(stop - lo) * 4]
        over[:len(core)] = core
        plain = np.zeros(blocks * block, np.float32)
        plain[:stop - start] = np.abs(x[start:stop])
        first = start // block
        peaks[first:first + blocks] = np.maximum(over.reshape(blocks, -1).max(axis=1),
                                                 plain.reshape(blocks, -1).max(axis=1))
    return peaks


def limit(x: np.ndarray, rate: int, ceiling_db: float, block: int = 128,
          release_s: float = 0.08) -> np.ndarray:
    """Keep the true peak under `ceiling_db`: a gain no block's peak would exceed it with,
    ramped down ahead of a peak (one block's look-ahead and a smooth backward slide) and back
    up over `release_s`. Quiet passages are left exactly as they are."""
    ceiling = 10.0 ** (ceiling_db / 20.0)
    peaks = true_peak_blocks(x, rate, block)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-9))
    if need.min() >= 1.0:
        return x
    padded = np.pad(need, 1, constant_values=1.0)
    need = np.minimum(need, np.minimum(padded[:-2], padded[2:]))  # each block's neighbours too
    steps = max(release_s * rate / block, 1.0)
    rise = 10.0 ** (6.0 / 20.0 / steps)  # 6 dB per release time
    g = need.astype(np.float64)
    for i in range(len(g) - 2, -1, -1):  # look-ahead: slide down towards a coming peak
        g[i] = min(g[i], g[i + 1] * rise * rise)
    for i in range(1, len(g)):  # release: come back up slowly
        g[i] = min(g[i], g[i - 1] * rise)
    return apply_gain(x, ((np.arange(len(g)) + 0.5) * block, g))


def master(x: np.ndarray, rate: int, loudness_lufs: float = -16.0, true_peak_db: float = -1.0) -> np.ndarray:
    """One linear gain to `loudness_lufs` and a true-peak limit under `true_peak_db` (less the
    AAC encode's margin), checked with ffmpeg's meter: where its true peak (whose interpolator
    overshoots more than soxr's on bright sounds) still reads over, the limiter's ceiling goes
    down by the difference; where limiting cost loudness, the gain goes up."""
    ceiling = true_peak_db - AAC_MARGIN_DB
    y, limit_at, gain_db = np.asarray(x, np.float32), ceiling, 0.0
    loud, _peak = measure(y, rate)
    if not np.isfinite(loud):
        raise UsageError("the audio is silent: there is nothing to bring to a loudness")
    gain_db = loudness_lufs - loud
    for _ in range(6):
        out = limit(y * np.float32(10.0 ** (gain_db / 20.0)), rate, limit_at)
        loud, peak = measure(out, rate)
        if abs(loud - loudness_lufs) <= 0.2 and peak <= ceiling:
            break
        gain_db += loudness_lufs - loud
        if peak > ceiling:
            limit_at -= peak - ceiling + 0.05
    return np.clip(out, -1.0, 1.0)


# --- the mix --------------------------------------------------------------------------------

def sections_bed(sections: Sequence[tuple[np.ndarray, int, int]], rate: int, length: int,
                 loop_crossfade_s: float = 0.5, crossfade_s: float = 1.5) -> np.ndarray:
    """One bed from several tracks, each (samples, start, end) fitted to its stretch of the
    video, with equal-power cross-fades of `crossfade_s` where one stretch meets the next."""
    out = np.zeros(length, np.float32)
    half = int(round(crossfade_s * rate / 2))
    for number, (track, start, end) in enumerate(sections):
        lo = max(start - (half if number else 0), 0)
        hi = min(end + (half if number < len(sections) - 1 else 0), length)
        if hi <= lo:
            continue
        piece = fit_length(track, rate, hi - lo, loop_crossfade_s)
        ramp = np.sin(np.linspace(0.0, np.pi / 2, 2 * half, dtype=np.float64)).astype(np.float32)
        if number and 2 * half <= len(piece):
            piece[:2 * half] *= ramp
        if number < len(sections) - 1 and 2 * half <= len(piece):
            piece[-2 * half:] *= ramp[::-1]
        out[lo:hi] += piece
    return out


def music_bed(music: np.ndarray, voice: np.ndarray, rate: int, settings: MixSettings,
              fitted: bool = False) -> np.ndarray:
    """The music as it goes under this voice (before ducking): fitted to its length (unless
    `fitted`: laid out already, e.g. by sections_bed), faded, at its level relative to the
    voice."""
    bed = music[:len(voice)].copy() if fitted else fit_length(music, rate, len(voice), settings.loop_crossfade_s)
    if len(bed) < len(voice):
        bed = np.concatenate([bed, np.zeros(len(voice) - len(bed), np.float32)])
    bed = fades(bed, rate, settings.fade_in_s, settings.fade_out_s)
    gain_db = active_db(voice, rate) + settings.music_volume_db - active_db(bed, rate)
    return bed * np.float32(10.0 ** (gain_db / 20.0))


def place_cues(voice: np.ndarray, rate: int, cues: Sequence[SoundCue], settings: MixSettings) -> np.ndarray:
    """The sound effects at their times, each at `sfx_volume_db` relative to the voice."""
    out = np.zeros(len(voice), np.float32)
    voice_db = active_db(voice, rate)
    for cue in cues:
        start = int(round(cue.time * rate))
        if start >= len(out) or not len(cue.samples):
            continue
        part = np.asarray(cue.samples, np.float32)[:len(out) - start]
        gain = 10.0 ** ((voice_db + settings.sfx_volume_db - active_db(part, rate)) / 20.0)
        out[start:start + len(part)] += part * np.float32(gain)
    return out


def mix(voice: np.ndarray, rate: int, music: Optional[np.ndarray] = None,
        cues: Sequence[SoundCue] = (), settings: Optional[MixSettings] = None,
        stems: Optional[dict] = None, fitted: bool = False) -> np.ndarray:
    """The mastered mix of the narration, the music bed and the cues (mono float32, as long
    as the voice). `stems`, if given, receives the pieces before mastering (for measuring)."""
    settings = (settings or MixSettings()).check()
    voice = np.asarray(voice, np.float32)
    total = voice.copy()
    if music is not None:
        level = music_bed(music, voice, rate, settings, fitted)
        bed = apply_gain(level, duck_gain(voice, rate, settings))
        total += bed
        if stems is not None:
            stems["music"], stems["music_not_ducked"] = bed, level
    if cues:
        effects = place_cues(voice, rate, cues, settings)
        total += effects
        if stems is not None:
            stems["sfx"] = effects
    if stems is not None:
        stems["voice"] = voice
    return master(total, rate, settings.loudness_lufs, settings.true_peak_db)
