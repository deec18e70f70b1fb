"""F5-TTS: zero-shot voice cloning from a 3-15 s reference clip and its transcript.

f5_tts is imported only when a model is loaded (the import takes many seconds). Weights are
built on the CPU and placed by the model manager, so they can be evicted like any other.
"""
from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import PodiumError
from ..files import temp_prefix
from ..memory import get_manager
from ..progress import Progress
from .script import Script
from .ffmpeg_exe import audio_to_wav
from .speech import Speech, SpeechBuilder, finished

log = logging.getLogger("podium.voice_clone")
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
            audio_to_wav(path, wav, SAMPLE_RATE)
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


def plan_chunks(sentences: list[str], max_chars: int) -> list[list[str]]:
    """Sentences grouped as upstream F5 groups text: whole sentences joined while the group stays
    within `max_chars` bytes (so a short one is spoken in the flow of its neighbours, not alone,
    where F5 would stretch anything under 10 bytes threefold); a longer sentence stands alone."""
    groups: list[list[str]] = []
    size = 0
    for sentence in sentences:
        n = len(sentence.encode())
        if groups and size + 1 + n <= max_chars:
            groups[-1].append(sentence)
            size += 1 + n
        else:
            groups.append([sentence])
            size = n
    return groups


def cut_points(wave: np.ndarray, sentences: list[str]) -> list[int]:
    """Where each sentence of a group ends in its `wave`, as sample indices (the last: the end).

    F5 gives the generated speech a length in proportion to the text's bytes, so a sentence's
    share of the wave is its share of the bytes; each cut is moved to the quietest 10 ms nearby
    (the breath between sentences), at most a quarter of the shorter neighbour or 0.2 s away."""
    weights = [len(s.encode()) + 1 for s in sentences]
    bounds = np.cumsum(weights) / sum(weights) * len(wave)
    frame = SAMPLE_RATE // 100
    padded = np.pad(np.asarray(wave, np.float64), frame // 2)  # padded[j:j + frame] centres on j
    cuts, done = [], 0
    for k, guess in enumerate(bounds[:-1]):
        left, right = guess - (bounds[k - 1] if k else 0.0), bounds[k + 1] - guess
        reach = int(min(0.2 * SAMPLE_RATE, 0.25 * min(left, right)))
        lo, hi = max(int(guess) - reach, done + 1), min(int(guess) + reach + 1, len(wave))
        best = min(max(int(guess), lo), hi - 1) if hi > lo else int(guess)
        if hi - lo > 1:
            power = np.convolve(padded[lo:hi + frame - 1] ** 2, np.ones(frame), mode="valid")
            best = lo + int(np.argmin(power))
        cuts.append(best)
        done = best
    return cuts + [len(wave)]


def _duration_without_stretch(ref, ref_text: str, text: str, speed: float) -> float:
    """F5's own length for `text` (reference + generated, seconds), without the 0.3 speed it
    forces on text under 10 bytes: passed as fix_duration, so "Hi!" lasts as long as its text."""
    from f5_tts.infer.utils_infer import hop_length, target_sample_rate

    audio, rate = ref
    ref_frames = int(audio.shape[-1] * target_sample_rate / rate) // hop_length
    if len(ref_text[-1].encode()) == 1:
        ref_text = ref_text + " "  # as infer_batch_process does
    frames = ref_frames + int(ref_frames / len(ref_text.encode()) * len(text.encode()) / speed)
    return (frames + 0.5) * hop_length / target_sample_rate


def _generate(f5, ref: tuple, ref_text: str, text: str, seed: int, nfe_step: int, speed: float):
    import torch
    from f5_tts.infer.utils_infer import infer_batch_process

    device = next(f5.ema_model.parameters()).device  # wherever the manager put it
    cuda = [device.index or 0] if device.type == "cuda" else []
    fix = _duration_without_stretch(ref, ref_text, text, speed) if len(text.encode()) < 10 else None
    with torch.random.fork_rng(devices=cuda):  # seed this call only, not the whole process
        torch.manual_seed(seed)
        wave, _, _ = next(infer_batch_process(
            ref, ref_text, [text], f5.ema_model, f5.vocoder, mel_spec_type=f5.mel_spec_type,
            progress=None, cross_fade_duration=0.0, nfe_step=nfe_step, speed=speed,
            fix_duration=fix, device=device))
    return np.asarray(wave, np.float32).reshape(-1)


def clone(f5, script: Script, ref_audio_path, ref_text: str, nfe_step: int = 32,
          speed: float = 1.0, seed: Optional[int] = None, cross_fade_s: float = 0.15,
          sentence_pause: float = 0.3, max_chars: Optional[int] = None) -> Speech:
    """Speak the script in the reference voice, each sentence's span exact.

    Within a segment, sentences are joined into chunks of up to `max_chars` bytes (default:
    F5's own rule from the reference's speaking rate), as F5 itself does, and each chunk's audio
    is cut back into its sentences (see `cut_points`); a sentence longer than that is made in
    pieces joined with a `cross_fade_s` fade. Chunk k of the whole script uses seed + k: the
    same seed gives the same audio.
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
    max_chars = max(int(max_chars), 1)
    plan = []  # per segment: [(sentences of a group, its pieces: one text unless a long sentence)]
    for segment in script.segments:
        plan.append([(group, [" ".join(group)] if len(group) > 1 else split_chunks(group[0], max_chars))
                     for group in plan_chunks(segment.sentences, max_chars)])
    progress = Progress(sum(len(texts) for seg in plan for _, texts in seg))
    builder, k = SpeechBuilder(SAMPLE_RATE, pause_s=sentence_pause), 0
    overlap = int(round(max(cross_fade_s, 0.0) * SAMPLE_RATE))
    for segment, groups in zip(script.segments, plan):
        for group, texts in groups:
            parts = []
            for text in texts:
                parts.append(_generate(f5, ref, ref_text, text, (seed + k) % 2**32, nfe_step, speed))
                k += 1
                progress.update()
            wave, start = crossfade(parts, overlap), 0
            for sentence, end in zip(group, cut_points(wave, group)):
                builder.add_sentence(sentence, wave[start:end])
                start = end
        builder.end_segment(segment.hold)
    return finished(builder, script, "the script has no sentences to speak")
