"""A profile's voice sample: read, checked (length, level, clipping, silence, speech rather
than music), trimmed to its best 10-15 s, and transcribed when no text is given.

Torch-free: numpy for the checks, ffmpeg to decode, and the speech recogniser
(podium.engines.asr, transformers' Whisper) in a child process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from podium.errors import ModelMissingError, PodiumError, UsageError

from podium.engines.ffmpeg_exe import FFmpegError, run_ffmpeg

RATE = 24000  # stored rate: F5-TTS's own
MIN_S, MAX_S = 5.0, 30.0  # what a sample may last
KEEP_S, LEAST_S = 15.0, 10.0  # what the trimmed sample keeps at most / aims for at least
FRAME_S = 0.02
FIX = "give 5-30 s of one person speaking, without music (WAV, or anything ffmpeg reads)"


@dataclass
class Sample:
    samples: np.ndarray  # the trimmed sample, float32 mono at RATE
    source_s: float  # how long the given file was
    start_s: float  # where the kept part starts in it
    level_db: float  # the speech's RMS level, dBFS

    @property
    def seconds(self) -> float:
        return len(self.samples) / RATE


def decode(path: Path) -> np.ndarray:
    """Mono float32 at RATE, at most a little more than MAX_S (a longer file is refused anyway)."""
    try:
        done = run_ffmpeg(["-t", f"{MAX_S + 0.5}", "-i", str(path), "-vn", "-ac", "1", "-ar", str(RATE),
                           "-f", "f32le", "-"], stdout=subprocess.PIPE)
    except FFmpegError:
        raise UsageError(f"voice sample {path}: ffmpeg cannot read it as audio; {FIX}") from None
    return np.frombuffer(done.stdout, np.float32)


def frame_db(samples: np.ndarray) -> np.ndarray:
    """The level of each 20 ms frame, dBFS."""
    step = int(RATE * FRAME_S)
    frames = samples[: len(samples) // step * step].reshape(-1, step)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def check(path: Path, samples: np.ndarray) -> np.ndarray:
    """The frames that hold sound (a bool per frame); UsageError naming what is wrong."""
    seconds = len(samples) / RATE
    if seconds > MAX_S:
        raise UsageError(f"voice sample {path} is longer than {MAX_S:.0f} s: {FIX} (cut it first, e.g. "
                         f"ffmpeg -i {path.name} -t 15 sample.wav)")
    if seconds < MIN_S:
        raise UsageError(f"voice sample {path} lasts {seconds:.1f} s, too short: {FIX}")
    clipped = float(np.mean(np.abs(samples) >= 0.99))
    if clipped > 0.001:
        raise UsageError(f"voice sample {path} is clipped ({clipped:.1%} of it at full scale): record it "
                         "again with the level lower")
    db = frame_db(samples)
    if db.max() < -50:
        raise UsageError(f"voice sample {path} is silent (its loudest moment is at {db.max():.0f} dBFS): {FIX}")
    active = db > max(-55.0, db.max() - 35)
    level = 10 * np.log10(np.mean(10 ** (db[active] / 10)))
    if level < -40:
        raise UsageError(f"voice sample {path} is too quiet (speech at {level:.0f} dBFS): record closer to "
                         "the microphone or raise the level (about -20 dBFS is right)")
    if active.sum() * FRAME_S < 3:
        raise UsageError(f"voice sample {path} holds only {active.sum() * FRAME_S:.1f} s of sound: {FIX}")
    first, last = np.flatnonzero(active)[[0, -1]]
    energy = 10 ** (db[first:last + 1] / 10)
    pauses = float(np.mean(energy < 0.5 * energy.mean()))  # speech pauses between syllables; music hardly
    if pauses < 0.15:
        raise UsageError(f"voice sample {path} sounds like music or a steady noise, not speech (it hardly "
                         f"ever pauses): {FIX}")
    return active


def best_span(db: np.ndarray, active: np.ndarray) -> tuple[int, int]:
    """(first, end) frames of the part to keep: all the sound when it is short, else the
    KEEP_S window with the most sound, its ends moved to the quietest frames near them (a pause,
    not a word cut in two), never under LEAST_S."""
    first, last = np.flatnonzero(active)[[0, -1]]
    margin = int(0.2 / FRAME_S)
    first, end = max(0, first - margin), min(len(db), last + 1 + margin)
    keep, least = int(KEEP_S / FRAME_S), int(LEAST_S / FRAME_S)
    if end - first <= keep:
        return first, end
    counts = np.convolve(active[first:end].astype(np.int32), np.ones(keep, np.int32), "valid")
    start = first + int(np.argmax(counts))
    slack = (keep - least) // 2
    start += int(np.argmin(db[start:start + slack]))
    stop = start + least + int(np.argmin(db[start + least:start + keep]))
    return start, max(stop, start + least)


def read(path: Path) -> Sample:
    """The checked, trimmed sample of the file at `path`."""
    samples = decode(path)
    active = check(path, samples)
    db = frame_db(samples)
    first, end = best_span(db, active)
    step = int(RATE * FRAME_S)
    kept = samples[first * step:end * step].copy()
    level = float(10 * np.log10(np.mean(10 ** (db[active] / 10))))
    return Sample(kept, len(samples) / RATE, first * FRAME_S, level)


def recogniser() -> tuple[str, Path]:
    """(model id, folder) of the first installed Whisper model with its tokenizer, or
    UsageError saying to give the text or pull the model."""
    from podium.models import load_registry

    registry = load_registry()
    # the whole checkpoint with its tokenizer: the word-timing entry (MuseTalk's whisper-tiny holds
    # only the encoder's files), then any other Whisper entry that has one
    ids = [e.id for e in registry if e.kind == "whisper-words"] + [e.id for e in registry if e.kind == "whisper"]
    for model_id in ids:
        try:
            return model_id, registry.resolve_file(model_id, "tokenizer_config.json").parent
        except ModelMissingError:
            continue
    raise UsageError("the voice sample needs its transcript: give --voice-text \"exactly what it says\", or "
                     f"install speech recognition to write it: podium models pull {ids[0] if ids else 'whisper-tiny-words'}")


def transcribe(wav: Path) -> tuple[str, str]:
    """(what the sample says, the model that heard it): Whisper in a child process."""
    model_id, folder = recogniser()
    from podium import errors

    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    root = str(Path(errors.__file__).resolve().parent.parent)  # where `podium` is
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    done = subprocess.run([sys.executable, "-m", "podium.engines.asr", str(folder), str(wav)],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise PodiumError(f"speech recognition ({model_id}) failed: {last}; give --voice-text \"...\" instead")
    text = json.loads(done.stdout.strip().splitlines()[-1])["text"].strip()
    if not text:
        raise UsageError("no speech was recognised in the voice sample: give --voice-text \"exactly what it "
                         f"says\", or {FIX}")
    return text, model_id
