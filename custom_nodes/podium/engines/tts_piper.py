"""Piper: fast neural TTS on the CPU (ONNX Runtime); the draft preset's voice."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PodiumError
from ..memory import get_manager
from ..progress import Progress
from .script import Script
from .speech import Speech, SpeechBuilder

DEFAULT_VOICE = "piper-en_US-joe-medium"


def load_voice(model_path: str | Path, config_path: Optional[str | Path] = None):
    """Load a Piper .onnx voice (config beside it as .onnx.json) through the model manager."""
    from piper import PiperVoice

    model_path = Path(model_path)
    config_path = Path(config_path) if config_path else Path(f"{model_path}.json")
    if not model_path.is_file():
        raise PodiumError(f"Piper voice not found: {model_path} (give the path of a .onnx voice)")
    if not config_path.is_file():
        raise PodiumError(
            f"Piper voice {model_path.name} has no config: expected {config_path} "
            "(download the .onnx.json that goes with the voice)"
        )
    return get_manager().load(
        f"piper:{model_path.resolve()}:{config_path.resolve()}",
        lambda: PiperVoice.load(model_path, config_path=config_path),
        size_bytes=os.path.getsize(model_path),
        kind="onnx",
        stage="voice",
    )


def synthesize(
    voice,
    script: Script,
    length_scale: float = 1.0,
    speaker_id: Optional[int] = None,
    sentence_pause: float = 0.3,
    speaker_voices: Optional[dict] = None,
    noise_scale: Optional[float] = None,
    noise_w: Optional[float] = None,
) -> Speech:
    """Speak every sentence of the script, one Piper call per sentence, spans exact.

    `speaker_voices` maps a segment's speaker (dialogue scripts) to its own loaded voice;
    segments of other speakers use `voice`. Everything is resampled to `voice`'s rate.
    Piper adds random noise to every call (None: the voice's own amounts); 0 and 0 make the
    audio the same on every run.
    """
    from piper import SynthesisConfig

    noise = {"noise_scale": noise_scale, "noise_w_scale": noise_w}
    config = SynthesisConfig(speaker_id=speaker_id, length_scale=length_scale, **noise)
    other_config = SynthesisConfig(length_scale=length_scale, **noise)
    rate = voice.config.sample_rate
    builder = SpeechBuilder(rate, pause_s=sentence_pause)
    progress = Progress(len(script.sentences))
    for segment in script.segments:
        own = (speaker_voices or {}).get(segment.speaker)
        speaker, syn_config = (own, other_config) if own is not None else (voice, config)
        for sentence in segment.sentences:
            chunks = [c.audio_float_array for c in speaker.synthesize(sentence, syn_config=syn_config)]
            if chunks:
                audio = resample(np.concatenate(chunks), speaker.config.sample_rate, rate)
                builder.add_sentence(sentence, audio)
            progress.update()
        builder.end_segment()
    speech = builder.build()
    if not speech.sentences:
        raise PodiumError("the voice produced no audio: the script has no speakable words")
    return speech


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Linear resampling: enough to join Piper voices of different rates (16/22.05 kHz)."""
    if rate_in == rate_out:
        return audio
    n_out = int(round(len(audio) * rate_out / rate_in))
    positions = np.arange(n_out) * (rate_in / rate_out)
    return np.interp(positions, np.arange(len(audio)), audio).astype(np.float32)


def parse_speaker_voices(text: str) -> dict[str, str]:
    """`Name: voice` lines (voice: a models.yaml id or a .onnx path) into a mapping."""
    mapping = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, voice = line.partition(":")
        if not sep or not name.strip() or not voice.strip():
            raise PodiumError(f"speaker_voices line {number} should look like 'Alice: voice-id', "
                              f"got {line!r}")
        mapping[name.strip()] = voice.strip()
    return mapping
