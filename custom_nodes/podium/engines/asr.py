"""Speech recognition for a profile's voice sample: transformers' Whisper pipeline over a
local model folder (whisper-tiny's, with its tokenizer). F5-TTS needs the exact words of its
reference; this drafts them for the user to correct.

The torch-free orchestrator runs it as a child process (`python -m podium.engines.asr DIR
WAV` prints {"text": ...} as JSON), so it never imports transformers itself.
"""
from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import numpy as np

from .speech import resample

RATE = 16000  # what Whisper's feature extractor takes


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float32 mono samples, rate) of a 16-bit PCM WAV (what the profile stores)."""
    with wave.open(str(path), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
        samples = np.frombuffer(frames, "<i2").astype(np.float32) / 32768.0
        return samples.reshape(-1, wav.getnchannels()).mean(axis=1), wav.getframerate()


def transcribe(model_dir: str | Path, wav_path: str | Path) -> str:
    """What the sample says, as the model hears it (offline: the folder holds everything)."""
    from transformers import pipeline

    recognise = pipeline("automatic-speech-recognition", model=str(model_dir), device="cpu")
    samples, rate = read_wav(wav_path)
    model = recognise.model  # at most 160 tokens (15 s of speech is ~40), within the model's own limits
    limit = min(160, model.config.max_target_positions, model.generation_config.max_length or 448) - 8
    out = recognise({"raw": resample(samples, rate, RATE), "sampling_rate": RATE},
                    generate_kwargs={"max_new_tokens": max(1, limit), "num_beams": 1})  # greedy
    return " ".join(str(out.get("text", "")).split())


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m podium.engines.asr MODEL_DIR SAMPLE.wav", file=sys.stderr)
        return 2
    print(json.dumps({"text": transcribe(argv[0], argv[1])}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
