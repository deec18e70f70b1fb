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
        f"piper:{model_path.resolve()}",
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
) -> Speech:
    """Speak every sentence of the script, one Piper call per sentence, spans exact."""
    from piper import SynthesisConfig

    config = SynthesisConfig(speaker_id=speaker_id, length_scale=length_scale)
    builder = SpeechBuilder(voice.config.sample_rate, pause_s=sentence_pause)
    progress = Progress(len(script.sentences))
    for segment in script.segments:
        for sentence in segment.sentences:
            chunks = [c.audio_float_array for c in voice.synthesize(sentence, syn_config=config)]
            if chunks:
                builder.add_sentence(sentence, np.concatenate(chunks))
            progress.update()
        builder.end_segment()
    speech = builder.build()
    if not speech.sentences:
        raise PodiumError("the voice produced no audio: the script has no speakable words")
    return speech
