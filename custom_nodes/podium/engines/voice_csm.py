"""Sesame CSM-1B: zero-shot voice cloning whose weights allow commercial use (Apache-2.0; its
Mimi codec, CC-BY-4.0, is inside the same checkpoint).

transformers runs it natively (CsmForConditionalGeneration + its processor), so nothing pins
torch. The voice is cloned the way CSM is prompted with context: the reference recording and
its transcript are one finished turn of speaker 0, and each sentence is the next turn of the
same speaker, spoken in that voice. Each sentence is made on its own, so its span is exact.
"""
from __future__ import annotations

import logging
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..errors import ModelMissingError, PodiumError
from ..files import temp_prefix
from ..memory import get_manager
from ..progress import Progress
from .script import Script
from .speech import Speech, SpeechBuilder, finished, resample

log = logging.getLogger("podium.voice_csm")
# Mimi's rate and frame: MimiConfig.sampling_rate = 24_000 and CsmProcessor's audio_kwargs
# "sampling_rate": 24000 (transformers' models/mimi and models/csm); one code frame per
# 24000 / 12.5 = 1920 samples (Mimi's 12.5 Hz frame rate, the model card's and the Mimi paper's).
SAMPLE_RATE = 24000
FRAME_RATE = 12.5
SPEAKER = "0"  # the role the chat template writes as "[0]": the reference and the narration share it
MIN_REF_S, MAX_REF_S = 1.0, 30.0  # 30 s of context is 375 frames of the backbone's 2048 positions
# The longest a sentence may run: 1 s plus 0.15 s a character (about 7 characters a second, half
# of ordinary speech), so a model that does not stop cannot run on.
LEAD_S, S_PER_CHAR = 1.0, 0.15
WORK_BYTES = 1024**3  # the KV cache of a 30 s context plus a sentence, in fp32
EMPTY_REF_TEXT = "ref_text is empty: give the transcript of the reference audio (CSM hears the voice through it)"
NOT_THERE = ("no CSM model in {folder}: {what} not found. Download it with `podium models pull "
             "csm-1b` (see `podium models list`)")


@dataclass
class Csm:
    """The processor (tokenizer, chat template, Mimi feature extractor) and the model."""
    processor: Any
    model: Any


def load_csm(folder: str | Path) -> Csm:
    """The CSM model in `folder` (the Hugging Face layout: config.json, model.safetensors, the
    tokenizer and processor files), offline, cached and placed by the memory manager."""
    folder = Path(folder).expanduser()
    for name, what in (("config.json", "config.json"), ("tokenizer.json", "the tokenizer (tokenizer.json)")):
        if not (folder / name).is_file():
            raise ModelMissingError(NOT_THERE.format(folder=folder, what=what))
    weights = sorted(folder.glob("model*.safetensors"))  # one file, or shards beside their index
    if not weights:
        raise ModelMissingError(NOT_THERE.format(folder=folder, what="model.safetensors"))
    manager = get_manager()

    def loader():
        from transformers import AutoProcessor, CsmForConditionalGeneration

        try:
            processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            model = CsmForConditionalGeneration.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"cannot load the CSM model in {folder} (incomplete or damaged?): "
                                    f"{exc}. Pull it again with `podium models pull csm-1b`") from None
        if getattr(processor, "chat_template", None) is None:
            raise ModelMissingError(NOT_THERE.format(folder=folder, what="its chat template (chat_template.jinja)"))
        return Csm(processor, model.eval())

    size = sum(p.stat().st_size for p in weights)
    return manager.load(f"csm:{folder.resolve()}", loader, kind="torch", stage="voice",
                        size_bytes=size, work_bytes=WORK_BYTES)


def read_reference(path) -> np.ndarray:
    """The reference as float32 mono at 24 kHz (any format ffmpeg reads), its length checked."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise PodiumError(f"reference audio not found: {path} (give a 5-15 s recording of the voice)")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception:  # not a format libsndfile reads: let ffmpeg convert it
        samples, rate = _ffmpeg_read(path), SAMPLE_RATE
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    seconds = len(mono) / rate
    if not MIN_REF_S <= seconds <= MAX_REF_S:
        raise PodiumError(f"reference audio {path.name} is {seconds:.1f} s long: give "
                          f"{MIN_REF_S:g}-{MAX_REF_S:g} s (5-15 s of clear speech works best)")
    if not np.isfinite(mono).all() or float(np.abs(mono).max()) < 1e-3:
        raise PodiumError(f"reference audio {path.name} is silent: give a recording of the voice")
    return resample(mono.astype(np.float32), rate, SAMPLE_RATE)


def _ffmpeg_read(src: Path) -> np.ndarray:
    import soundfile as sf

    from .ffmpeg_exe import audio_to_wav

    with tempfile.TemporaryDirectory(prefix=temp_prefix("csm")) as tmp:
        dst = Path(tmp) / "reference.wav"
        audio_to_wav(src, dst, SAMPLE_RATE)
        return sf.read(str(dst), dtype="float32", always_2d=True)[0]


def max_frames(text: str) -> int:
    """The most code frames a sentence of `text` may take (see LEAD_S, S_PER_CHAR)."""
    return int(np.ceil((LEAD_S + S_PER_CHAR * len(text)) * FRAME_RATE))


def prompt(csm: Csm, reference: np.ndarray, ref_text: str, text: str):
    """The model inputs: the reference as a finished turn, then `text` as the next turn, written
    by the model's own chat template (transformers' convert_csm.py: "<bos>[0]text<eos>", plus
    "<|AUDIO|><|audio_eos|>" where a turn carries audio)."""
    conversation = [
        {"role": SPEAKER, "content": [{"type": "text", "text": ref_text}, {"type": "audio"}]},
        {"role": SPEAKER, "content": [{"type": "text", "text": text}]},
    ]
    rendered = csm.processor.apply_chat_template(conversation, tokenize=False)
    return csm.processor(rendered, audio=[reference], return_tensors="pt")


def speak_sentence(csm: Csm, reference: np.ndarray, ref_text: str, text: str, seed: int,
                   temperature: float = 0.9, top_k: int = 50) -> np.ndarray:
    """One sentence in the reference voice, float32 at 24 kHz, at most max_frames(text) long.
    Sampling as csm-1b's generation_config (transformers' convert_csm.py): top-k 50 at
    temperature 0.9 for the backbone and the depth decoder alike."""
    import torch

    model = csm.model
    device = next(model.parameters()).device  # wherever the manager put it
    inputs = prompt(csm, reference, ref_text, text).to(device)
    codes = model.config.codec_config.codebook_size
    never = list(range(codes, model.config.vocab_size))  # pad/specials: no audio the codec can decode
    sampling = dict(do_sample=True, temperature=temperature, top_k=top_k, suppress_tokens=never)
    cuda = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), torch.inference_mode():  # seed this call only
        torch.manual_seed(seed)
        audio = model.generate(**inputs, output_audio=True, max_new_tokens=max_frames(text),
                               **sampling, **{f"depth_decoder_{k}": v for k, v in sampling.items()})
    wave = audio[0].float().cpu().numpy().reshape(-1)
    return np.clip(np.nan_to_num(wave), -1.0, 1.0).astype(np.float32)


def clone(csm: Csm, script: Script, ref_audio_path, ref_text: str, seed: Optional[int] = None,
          sentence_pause: float = 0.3, temperature: float = 0.9, top_k: int = 50) -> Speech:
    """Speak the script in the reference voice, each sentence's span exact. Sentence k of the
    whole script uses seed + k: the same seed gives the same audio."""
    if not (ref_text or "").strip():
        raise PodiumError(EMPTY_REF_TEXT)
    if temperature <= 0 or top_k < 1:
        raise PodiumError(f"temperature must be above 0 and top_k at least 1 (got {temperature}, {top_k})")
    if seed is None:
        seed = random.randrange(2**31)
        log.info("CSM seed: %d", seed)
    reference = read_reference(ref_audio_path)
    progress = Progress(sum(len(segment.sentences) for segment in script.segments))
    builder, k = SpeechBuilder(SAMPLE_RATE, pause_s=sentence_pause), 0
    for segment in script.segments:
        for sentence in segment.sentences:
            wave = speak_sentence(csm, reference, " ".join(ref_text.split()), sentence,
                                  (seed + k) % 2**32, temperature, top_k)
            builder.add_sentence(sentence, wave)
            k += 1
            progress.update()
        builder.end_segment(segment.hold)
    return finished(builder, script, "the script has no sentences to speak")
