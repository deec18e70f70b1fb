"""F5-TTS: zero-shot voice cloning from a 3-15 s reference clip and its transcript.

f5_tts is imported only when a model is loaded (the import takes many seconds). Weights are
built on the CPU and placed by the model manager, so they can be evicted like any other.
"""
from __future__ import annotations

import logging
import os
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PodiumError
from ..files import temp_prefix
from ..memory import get_manager
from ..progress import Progress
from .script import Script
from .speech import Speech, SpeechBuilder

log = logging.getLogger("podium.tts_f5")
SAMPLE_RATE = 24000
MIN_REF_S, CLIP_REF_S, MAX_REF_S = 3.0, 12.0, 15.0
WORK_BYTES = 2 * 1024**3  # activations of a ~30 s generation with classifier-free guidance
EMPTY_REF_TEXT = ("ref_text is empty: give the transcript of the reference audio; without it "
                  "F5-TTS would download Whisper to transcribe it")


def _configs_dir() -> str:
    from importlib.resources import files

    return os.path.realpath(str(files("f5_tts").joinpath("configs")))


def shipped_configs() -> list[str]:
    """The model configs f5-tts ships: F5TTS_v1_Base, F5TTS_Base, E2TTS_Base, ..."""
    return sorted(p[:-5] for p in os.listdir(_configs_dir()) if p.endswith(".yaml"))


def _config_name(model_name: str) -> str:
    """A shipped config name, or a model .yaml anywhere: F5TTS only reads
    f5_tts/configs/<name>.yaml, so a path elsewhere is given relative to that folder."""
    configs = _configs_dir()
    if not model_name.endswith(".yaml"):
        shipped = shipped_configs()
        if model_name not in shipped:
            raise PodiumError(f"unknown F5-TTS model config {model_name!r}: use one of "
                              f"{', '.join(shipped)} or the path of a model .yaml")
        return model_name
    if not Path(model_name).is_file():
        raise PodiumError(f"F5-TTS model config not found: {model_name}")
    return os.path.relpath(os.path.realpath(model_name), configs)[:-len(".yaml")]


def load_f5(ckpt_path, vocab_path, vocoder_dir, model_name: str = "F5TTS_v1_Base"):
    """An f5_tts.api.F5TTS from local files (nothing downloads), cached and placed by the manager."""
    ckpt, vocab, vocoder = Path(ckpt_path), Path(vocab_path), Path(vocoder_dir)
    for path, what in ((ckpt, "checkpoint"), (vocab, "vocab.txt"),
                       (vocoder / "config.yaml", "vocoder config (vocos-mel-24khz)"),
                       (vocoder / "pytorch_model.bin", "vocoder weights (vocos-mel-24khz)")):
        if not path.is_file():
            raise PodiumError(f"F5-TTS {what} not found: {path}")
    if ckpt.suffix not in (".safetensors", ".pt"):
        raise PodiumError(f"F5-TTS checkpoint must be .safetensors or .pt, got {ckpt.name}")
    config, manager = _config_name(model_name), get_manager()

    def loader():
        import torch
        from f5_tts.api import F5TTS

        f5 = F5TTS(model=config, ckpt_file=str(ckpt), vocab_file=str(vocab),
                   vocoder_local_path=str(vocoder), device="cpu")
        device = manager.device
        if device.startswith("cuda") and torch.cuda.get_device_properties(device).major >= 7:
            f5.ema_model.half()  # what F5TTS itself does on such GPUs; the vocoder stays fp32
        return f5

    size = ckpt.stat().st_size + (vocoder / "pytorch_model.bin").stat().st_size
    key = f"f5:{config}:{ckpt.resolve()}:{vocab.resolve()}:{vocoder.resolve()}"
    return manager.load(key, loader, size_bytes=size, kind="torch", stage="voice",
                        work_bytes=WORK_BYTES)


def reference_wav(path, workdir) -> Path:
    """The reference as a 16-bit PCM .wav (converted into `workdir` if needed), length checked."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise PodiumError(f"reference audio not found: {path} (give a 5-12 s recording of the voice)")
    try:
        info = sf.info(str(path))
    except Exception:  # not a format libsndfile reads: let ffmpeg try
        info = None
    wav = path
    if info is None or info.format != "WAV" or info.subtype != "PCM_16" or path.suffix != ".wav":
        wav = Path(workdir) / "reference.wav"
        if info is not None:
            data, rate = sf.read(str(path), dtype="float32")
            sf.write(str(wav), data, rate, subtype="PCM_16")
        else:
            _ffmpeg_to_wav(path, wav)
    seconds = sf.info(str(wav)).duration
    if seconds < MIN_REF_S:
        raise PodiumError(f"reference audio {path.name} is {seconds:.1f} s long: F5-TTS needs "
                          f"at least {MIN_REF_S:.0f} s (5-12 s of clear speech works best)")
    if seconds > MAX_REF_S:
        raise PodiumError(f"reference audio {path.name} is {seconds:.1f} s long: give 5-12 s. "
                          f"F5-TTS clips the reference at {CLIP_REF_S:.0f} s, and the transcript "
                          "must match the audio it keeps")
    if seconds > CLIP_REF_S:
        log.warning("reference audio is %.1f s: F5-TTS clips it at %.0f s; the transcript must "
                    "match what is kept", seconds, CLIP_REF_S)
    return wav


def _ffmpeg_to_wav(src: Path, dst: Path) -> None:
    from .ffmpeg_exe import find_ffmpeg

    done = subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(src), "-vn", "-ac", "1",
                           "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", str(dst)],
                          capture_output=True, text=True)
    if done.returncode != 0 or not dst.is_file():
        reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise PodiumError(f"could not read the reference audio {src.name}: {reason}")


def crossfade(parts: list[np.ndarray], overlap: int) -> np.ndarray:
    """Join chunks overlapping by `overlap` samples with an equal-power fade (no dip, no gap)."""
    out = parts[0]
    for part in parts[1:]:
        n = min(overlap, len(out), len(part))
        ramp = np.linspace(0.0, np.pi / 2, n, dtype=np.float32)
        mixed = out[len(out) - n:] * np.cos(ramp) + part[:n] * np.sin(ramp)
        out = np.concatenate([out[:len(out) - n], mixed, part[n:]])
    return out


def split_chunks(sentence: str, max_chars: int) -> list[str]:
    """F5's own chunking (at clause punctuation, at most max_chars bytes where it can)."""
    from f5_tts.infer.utils_infer import chunk_text

    return chunk_text(sentence, max_chars=max(int(max_chars), 1)) or [sentence]


def _generate(f5, ref: tuple, ref_text: str, text: str, seed: int, nfe_step: int, speed: float):
    import torch
    from f5_tts.infer.utils_infer import infer_batch_process

    device = next(f5.ema_model.parameters()).device  # wherever the manager put it
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # seed this call only, not the whole process
        torch.manual_seed(seed)
        wave, _, _ = next(infer_batch_process(
            ref, ref_text, [text], f5.ema_model, f5.vocoder, mel_spec_type=f5.mel_spec_type,
            progress=None, cross_fade_duration=0.0, nfe_step=nfe_step, speed=speed, device=device))
    return np.asarray(wave, np.float32).reshape(-1)


def clone(f5, script: Script, ref_audio_path, ref_text: str, nfe_step: int = 32,
          speed: float = 1.0, seed: Optional[int] = None, cross_fade_s: float = 0.15,
          sentence_pause: float = 0.3, max_chars: Optional[int] = None) -> Speech:
    """Speak every sentence of the script in the reference voice, one sentence at a time.

    A sentence longer than `max_chars` bytes (default: F5's own rule from the reference's
    speaking rate) is made in chunks joined with a `cross_fade_s` fade. Chunk k of the whole
    script uses seed + k: the same seed gives the same audio.
    """
    import soundfile as sf
    import torch
    from f5_tts.infer import utils_infer

    if not (ref_text or "").strip():
        raise PodiumError(EMPTY_REF_TEXT)
    if nfe_step < 1 or speed <= 0:
        raise PodiumError(f"nfe_step must be at least 1 and speed above 0 (got {nfe_step}, {speed})")
    if seed is None:
        seed = random.randrange(2**31)
        log.info("F5-TTS seed: %d", seed)
    cache = utils_infer._ref_audio_cache  # F5 keeps its trimmed copy in the temp folder
    for digest in [d for d, p in cache.items() if not os.path.isfile(p)]:
        del cache[digest]  # ... which may have been cleaned away since
    with tempfile.TemporaryDirectory(prefix=temp_prefix("f5")) as workdir:
        wav = reference_wav(ref_audio_path, workdir)  # F5 trims silence and clips at 12 s:
        ref_file, ref_text = utils_infer.preprocess_ref_audio_text(str(wav), ref_text, show_info=log.info)
    samples, rate = sf.read(ref_file, dtype="float32", always_2d=True)
    ref = (torch.from_numpy(np.ascontiguousarray(samples.T)), rate)
    ref_s = len(samples) / rate
    if max_chars is None:  # F5's rule: reference + chunk stay under ~22 s
        max_chars = int(len(ref_text.encode()) / ref_s * (22 - ref_s) * speed)
    plan = [[split_chunks(s, max_chars) for s in seg.sentences] for seg in script.segments]
    progress = Progress(sum(len(c) for seg in plan for c in seg))
    builder, k = SpeechBuilder(SAMPLE_RATE, pause_s=sentence_pause), 0
    overlap = int(round(max(cross_fade_s, 0.0) * SAMPLE_RATE))
    for segment, chunked in zip(script.segments, plan):
        for sentence, chunks in zip(segment.sentences, chunked):
            parts = []
            for chunk in chunks:
                parts.append(_generate(f5, ref, ref_text, chunk, (seed + k) % 2**32, nfe_step, speed))
                k += 1
                progress.update()
            builder.add_sentence(sentence, crossfade(parts, overlap))
        builder.end_segment()
    speech = builder.build()
    if not speech.sentences:
        raise PodiumError("the script has no sentences to speak")
    return speech
