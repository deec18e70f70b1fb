"""Piper: fast neural TTS on the CPU (ONNX Runtime); the draft preset's voice."""
from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np

from .. import jsonio
from ..errors import PodiumError
from ..memory import get_manager
from ..progress import Progress
from .alignment import chunk_phones, words
from .script import Script, clean_text, speakable
from .speech import PhoneSpan, Speech, SpeechBuilder, finished, resample

DEFAULT_VOICE = "piper-en_US-joe-medium"
# Piper makes a whole call's audio at once, ~1.2 MB of memory per character of text: a sentence
# longer than WHOLE_CHARS (few real ones are) is spoken in pieces of at most PIECE_CHARS, cut at
# clauses, else between words; memory then stays flat however long the sentence.
WHOLE_CHARS = 150
PIECE_CHARS = 60
# Piper's noise comes from the voice's own RandomNormalLike nodes, seeded from ONNX Runtime's
# global seed when the session is made: a fixed one makes the same text give the same audio.
NOISE_SEED = 0
_CLAUSE = re.compile(r"(?<=[,;:\u2013\u2014])\s+")


def load_voice(model_path: str | Path, config_path: Optional[str | Path] = None):
    """A Piper .onnx voice (config beside it as .onnx.json) with its alignments, loaded once
    (~1 s) and kept by the model manager for every later segment and run of this process,
    keyed by both files' paths and modification times: a voice file replaced on disk is loaded
    anew, and its old copy let go."""
    model_path = Path(model_path)
    config_path = Path(config_path) if config_path else Path(f"{model_path}.json")
    if not model_path.is_file():
        raise PodiumError(f"Piper voice not found: {model_path} (give the path of a .onnx voice)")
    if not config_path.is_file():
        raise PodiumError(
            f"Piper voice {model_path.name} has no config: expected {config_path} "
            "(download the .onnx.json that goes with the voice)"
        )
    manager = get_manager()
    files = f"piper:{model_path.resolve()}:{config_path.resolve()}"
    key = f"{files}@{model_path.stat().st_mtime_ns}:{config_path.stat().st_mtime_ns}"
    for old, *_ in manager.loaded():
        if old.startswith(files + "@") and old != key:  # the files changed since it was loaded
            manager.evict(old)
    return manager.load(key, lambda: _load(model_path, config_path), size_bytes=os.path.getsize(model_path),
                        kind="onnx", stage="voice")


def _load(model_path: Path, config_path: Path):
    """PiperVoice.load with its failures as one line each: a broken config, a file that is no
    ONNX voice (or one this config does not fit)."""
    import onnxruntime
    from piper import PiperVoice

    try:
        jsonio.read_json(config_path)  # a user's --voice FILE.onnx brings it: bounded
    except jsonio.JsonInputError as err:
        raise PodiumError(f"Piper voice config {config_path.name} {err}: "
                          "download the .onnx.json that goes with the voice again") from None
    onnxruntime.set_seed(NOISE_SEED)
    try:
        voice = PiperVoice.load(model_path, config_path=config_path, include_alignments=True)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PodiumError(f"Piper voice config {config_path.name} is not a Piper voice config "
                          f"(missing or wrong {err}): download the .onnx.json that goes with "
                          "the voice again") from None
    except Exception as err:  # onnxruntime's InvalidProtobuf / Fail / InvalidGraph ...
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise PodiumError(f"{model_path.name} is not a Piper voice ONNX Runtime can load ({reason}): "
                          "download the voice again") from None
    inputs = {i.name for i in voice.session.get_inputs()}
    if not {"input", "input_lengths", "scales"} <= inputs:
        raise PodiumError(f"{model_path.name} is an ONNX model but not a Piper voice (its inputs "
                          f"are {', '.join(sorted(inputs))}): give a Piper .onnx voice")
    voice.session = _ShrinkingSession(voice.session)
    return voice


class _ShrinkingSession:
    """The voice's ONNX Runtime session, handing its arena's memory back after every call:
    otherwise the arena keeps (and doubles) the most any call needed, so memory would follow
    the longest piece and the order of the calls."""

    def __init__(self, session):
        import onnxruntime

        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names, input_feed, run_options=None):
        return self._session.run(output_names, input_feed, run_options or self._options)

    def __getattr__(self, name):
        return getattr(self._session, name)


def pieces(sentence: str, max_chars: int = PIECE_CHARS, whole_up_to: int = WHOLE_CHARS) -> list[str]:
    """`sentence` whole if it has at most `whole_up_to` characters, else in pieces of at most
    `max_chars`, in order: whole clauses packed together where they fit, a longer clause cut
    between words, a longer word cut anywhere."""
    if len(sentence) <= max(whole_up_to, max_chars):
        return [sentence]
    out: list[str] = []
    for clause in _CLAUSE.split(sentence):
        parts = textwrap.wrap(clause, max_chars, break_on_hyphens=False) or [clause]
        for part in parts:
            if out and len(out[-1]) + 1 + len(part) <= max_chars:
                out[-1] += " " + part
            else:
                out.append(part)
    return out


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
    """Speak every sentence of the script, spans exact: one Piper call per sentence, or per
    piece of one longer than WHOLE_CHARS (see `pieces`); the pieces' audio is the sentence's.

    `speaker_voices` maps a segment's speaker (dialogue scripts) to its own loaded voice;
    segments of other speakers use `voice`. Everything is resampled to `voice`'s rate.
    Piper adds random noise to every call (None: the voice's own amounts), seeded when the voice
    is loaded (NOISE_SEED): a fresh process speaking the same script gives the same audio;
    0 and 0 make every call alike whatever came before.
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
            audio, phones = _speak(speaker, sentence, syn_config)
            if len(audio):
                builder.add_sentence(sentence, resample(audio, speaker.config.sample_rate, rate),
                                     phones, words(phones, clean_text(sentence)))
            progress.update()
        builder.end_segment(segment.hold)
    return finished(builder, script, "the voice produced no audio: the script has no speakable words")


def _speak(voice, sentence: str, syn_config) -> tuple[np.ndarray, list[PhoneSpan]]:
    """One sentence's audio, made a bounded piece at a time (memory flat in its length), and
    its phonemes timed from the sentence's start (none when the voice gives no alignments);
    nothing for punctuation alone (as for "...", so "!!!" is not read out as "exclamation")."""
    if not speakable(sentence):
        return np.zeros(0, np.float32), []
    chunks, phones, at = [], [], 0
    rate = voice.config.sample_rate
    for piece in pieces(clean_text(sentence)):
        for chunk in voice.synthesize(piece, syn_config=syn_config, include_alignments=True):
            audio = chunk.audio_float_array
            phones += chunk_phones(chunk.phoneme_alignments, len(audio), rate, at / rate)
            chunks.append(audio)
            at += len(audio)
        _trim_heap()
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), phones


def _trim_heap() -> None:
    """Give the C heap's free memory back to the system (glibc keeps what a piece's tensors
    freed, and the heap would creep up piece after piece); nothing where there is no glibc."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _MALLOC_TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = None


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
