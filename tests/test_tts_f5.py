"""F5-TTS voice cloning through the real loaders: f5_tts.api.F5TTS reads a tiny random-weight
DiT/CFM checkpoint (.safetensors, the released format), a vocab.txt and a local Vocos folder
(config.yaml + pytorch_model.bin) written here. Nothing may touch the network."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from podium.engines import voice_clone as tts_f5  # noqa: E402
from podium.engines.script import Script, Segment  # noqa: E402
from podium.errors import PodiumError  # noqa: E402
from podium.memory import get_manager  # noqa: E402
from podium.nodes.voice_clone import NO_MODEL, PodiumF5VoiceClone  # noqa: E402

RATE = tts_f5.SAMPLE_RATE
REF_TEXT = "Hello there, this is my voice."
ARCH = dict(dim=32, depth=2, heads=2, ff_mult=2, text_dim=16, text_mask_padding=True, qk_norm=None,
            conv_layers=1, pe_attn_head=None, attn_backend="torch", attn_mask_enabled=False,
            checkpoint_activations=False)
MEL = dict(target_sample_rate=RATE, n_mel_channels=100, hop_length=256, win_length=1024,
           n_fft=1024, mel_spec_type="vocos")
VOCOS = {  # vocos-mel-24khz's config.yaml with a smaller backbone (dim 512, 1536, 8 layers there)
    "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures",
                          "init_args": {"sample_rate": RATE, "n_fft": 1024, "hop_length": 256,
                                        "n_mels": 100, "padding": "center"}},
    "backbone": {"class_path": "vocos.models.VocosBackbone",
                 "init_args": {"input_channels": 100, "dim": 64, "intermediate_dim": 128, "num_layers": 2}},
    "head": {"class_path": "vocos.heads.ISTFTHead",
             "init_args": {"dim": 64, "n_fft": 1024, "hop_length": 256, "padding": "center"}},
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    attempts = []
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"test: network access attempted to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    yield
    assert not attempts, f"network access attempted: {attempts}"


def voice_like(seconds: float, f0: float = 140.0) -> np.ndarray:
    """Harmonics of f0 under a 4 Hz syllable envelope: speech-like enough for F5's trimming."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t)
    return (0.25 * tone * envelope / 2.6).astype(np.float32)


def build_tiny_f5(root):
    """Tiny F5 model files in the layout the real ones have (checkpoint, vocab.txt, a Vocos
    folder, the model's config .yaml), plus reference recordings; returns `root`."""
    from f5_tts.model import CFM, DiT
    from f5_tts.model.utils import get_tokenizer
    from safetensors.torch import save_file
    from vocos import Vocos

    (root / "vocos").mkdir(parents=True)
    chars = [" "] + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'-\"")
    (root / "vocab.txt").write_text("\n".join(chars) + "\n", encoding="utf-8")
    config = {"model": {"name": "tiny", "tokenizer": "custom", "backbone": "DiT", "arch": ARCH,
                        "mel_spec": MEL}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    vocab_map, vocab_size = get_tokenizer(str(root / "vocab.txt"), "custom")
    model = CFM(transformer=DiT(**ARCH, text_num_embeds=vocab_size, mel_dim=100),
                mel_spec_kwargs=MEL,
                vocab_char_map=vocab_map)
    save_file({f"ema_model.{k}": v.contiguous() for k, v in model.state_dict().items()},
              str(root / "model_tiny.safetensors"))
    (root / "vocos" / "config.yaml").write_text(yaml.safe_dump(VOCOS))
    torch.save(Vocos.from_hparams(str(root / "vocos" / "config.yaml")).state_dict(),
               root / "vocos" / "pytorch_model.bin")
    sf.write(root / "ref.wav", voice_like(4.0), RATE, subtype="PCM_16")
    sf.write(root / "short.wav", voice_like(2.0), RATE, subtype="PCM_16")
    sf.write(root / "long.wav", voice_like(16.0), RATE, subtype="PCM_16")
    sf.write(root / "ref.flac", voice_like(4.0, f0=120.0), 16000)
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return build_tiny_f5(tmp_path_factory.mktemp("f5"))


@pytest.fixture(scope="module")
def f5(files):
    model = tts_f5.load_f5(files / "model_tiny.safetensors", files / "vocab.txt", files / "vocos",
                           model_name=str(files / "tiny.yaml"))
    yield model
    get_manager().evict()


def script(*segments: list[str]) -> Script:
    return Script(title="t", segments=[Segment(sentences=list(s)) for s in segments])


def speak(f5, files, text_script, **kwargs):
    kwargs = {"nfe_step": 2, "seed": 7, **kwargs}
    return tts_f5.clone(f5, text_script, files / "ref.wav", REF_TEXT, **kwargs)


def test_loaded_through_the_manager(f5, files):
    from f5_tts.api import F5TTS

    assert isinstance(f5, F5TTS) and f5.ema_model.transformer.dim == ARCH["dim"]
    keys = [k for k, _size, kind, stage in get_manager().loaded() if k.startswith("f5:")]
    assert len(keys) == 1 and dict((k, s) for k, _, _, s in get_manager().loaded())[keys[0]] == "voice"
    again = tts_f5.load_f5(files / "model_tiny.safetensors", files / "vocab.txt", files / "vocos",
                           model_name=str(files / "tiny.yaml"))
    assert again is f5  # cached, not rebuilt


def test_one_span_per_sentence_in_order(f5, files):
    sentences = [["First sentence here.", "Second one, a bit longer than that."], ["Third and last."]]
    speech = speak(f5, files, script(*sentences))
    assert speech.sample_rate == RATE and speech.samples.dtype == np.float32
    assert [s.text for s in speech.sentences] == [t for seg in sentences for t in seg]
    assert [s.segment for s in speech.sentences] == [0, 0, 1]
    previous_end = 0.0
    for span in speech.sentences:
        assert span.end > span.start >= previous_end
        previous_end = span.end
    assert previous_end < speech.duration
    assert len(speech.segment_bounds) == 2 and speech.segment_bounds[-1][1] == speech.duration
    a, b = speech.sentences[0], speech.sentences[1]
    assert b.start - a.end == pytest.approx(0.3, abs=1 / RATE)  # sentence_pause
    spoken = speech.samples[int(a.start * RATE):int(a.end * RATE)]
    assert np.sqrt(np.mean(spoken**2)) > 1e-4 and np.all(np.isfinite(speech.samples))


def test_same_seed_same_audio(f5, files):
    text = script(["The same seed gives the same audio."])
    first, again = speak(f5, files, text, seed=3), speak(f5, files, text, seed=3)
    other = speak(f5, files, text, seed=4)
    assert np.array_equal(first.samples, again.samples)
    assert len(other.samples) == len(first.samples) and not np.allclose(other.samples, first.samples)


def test_long_sentence_chunks_are_cross_faded(f5, files):
    sentence = "This long sentence has clauses, so it is cut, and its parts are joined again."
    chunks = tts_f5.split_chunks(sentence, 30)
    assert len(chunks) >= 2
    joined = speak(f5, files, script([sentence]), max_chars=30, cross_fade_s=0.15)
    plain = speak(f5, files, script([sentence]), max_chars=30, cross_fade_s=0.0)
    overlap = int(round(0.15 * RATE))
    cut = lambda s: s.samples[int(round(s.sentences[0].start * RATE)):int(round(s.sentences[0].end * RATE))]
    a, b = cut(joined), cut(plain)
    assert len(b) - len(a) == (len(chunks) - 1) * overlap  # length = sum - overlaps
    # chunk audio is the same in both runs (seeds per chunk), so the first chunk's joint is known:
    first_len = len(speak(f5, files, script([chunks[0]]), max_chars=10_000, cross_fade_s=0.0,
                          seed=7).samples) - 2 * int(round(0.25 * RATE))
    assert np.array_equal(a[:first_len - overlap], b[:first_len - overlap])
    window = RATE // 100  # 10 ms windows around the joint: no silent gap
    rms = lambda x: np.sqrt(np.mean(x**2))
    around = a[first_len - overlap - 4 * window:first_len + 4 * window]
    level = rms(a)
    dips = [rms(around[i:i + window]) for i in range(0, len(around) - window, window)]
    assert min(dips) > 0.2 * level, (min(dips), level)


def test_short_sentences_join_their_neighbours_in_one_chunk():
    assert tts_f5.plan_chunks(["Hi!", "Welcome to the show.", "x" * 40, "Ok."], 30) == \
        [["Hi!", "Welcome to the show."], ["x" * 40], ["Ok."]]
    assert tts_f5.plan_chunks(["One.", "Two."], 1000) == [["One.", "Two."]]


def test_a_short_sentence_lasts_in_proportion_to_its_text(f5, files):
    """Issue 13: "Hi!" alone hit F5's 0.3 speed factor and lasted ~3x too long. Joined with
    its neighbour in one chunk (as F5 itself chunks) its span is its share of the text."""
    short, long_ = "Hi!", "This sentence is quite a lot longer than the first one."
    speech = speak(f5, files, script([short, long_]))
    a, b = speech.sentences
    assert (a.text, b.text) == (short, long_)
    chunk = (a.end - a.start) + (b.end - b.start)  # the one generation, cut in two
    share = (len(short) + 1) / (len(short) + len(long_) + 2)
    assert abs((a.end - a.start) - share * chunk) <= 0.25 * share * chunk + 0.011, (a, b)
    rate_a, rate_b = (a.end - a.start) / len(short), (b.end - b.start) / len(long_)
    assert 0.6 < rate_a / rate_b < 1.6, (rate_a, rate_b)  # was ~3x: the same speaking rate


def test_a_lone_short_sentence_is_not_stretched(f5, files):
    """A segment of one short sentence (its own graph run in the orchestrator) has nothing to
    join: it gets F5's length for its bytes, without the 0.3 stretch."""
    lone = speak(f5, files, script(["Welcome."])).sentences[0]
    normal = speak(f5, files, script(["Welcome to our show today."])).sentences[0]
    per_byte = lambda span: (span.end - span.start) / len(span.text.encode())
    assert abs(per_byte(lone) / per_byte(normal) - 1) < 0.1, (lone, normal)


def test_cuts_find_the_breath_between_sentences():
    rng = np.random.default_rng(0)
    voice = lambda n: (0.3 * rng.standard_normal(n)).astype(np.float32)
    gap = int(0.05 * RATE)
    wave = np.concatenate([voice(int(0.9 * RATE)), np.zeros(gap, np.float32), voice(int(1.0 * RATE))])
    first, end = tts_f5.cut_points(wave, ["Some words here.", "And some more here."])
    assert int(0.9 * RATE) <= first <= int(0.9 * RATE) + gap and end == len(wave)
    flat = np.full(RATE, 0.2, np.float32)  # no breath anywhere: the cut stays near its share
    (cut, _), share = tts_f5.cut_points(flat, ["abc", "abcdefg"]), 4 / 12 * RATE
    assert abs(cut - share) <= 0.25 * share


def test_crossfade_keeps_power_and_length():
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal(n).astype(np.float32) for n in (5000, 3000, 4000)]
    out = tts_f5.crossfade(parts, 1000)
    assert len(out) == 12000 - 2 * 1000
    assert np.array_equal(out[:4000], parts[0][:4000])
    assert 0.8 < np.sqrt(np.mean(out[4000:5000] ** 2)) < 1.2  # equal power: no dip at the joint
    assert np.array_equal(tts_f5.crossfade(parts, 0), np.concatenate(parts))


def test_reference_errors(f5, files, tmp_path):
    text = script(["Hello."])
    with pytest.raises(PodiumError, match="not found"):
        tts_f5.clone(f5, text, tmp_path / "missing.wav", REF_TEXT)
    with pytest.raises(PodiumError, match=r"2\.0 s long.*at least 3 s"):
        tts_f5.clone(f5, text, files / "short.wav", REF_TEXT)
    with pytest.raises(PodiumError, match="clips the reference at 12 s"):
        tts_f5.clone(f5, text, files / "long.wav", REF_TEXT)
    for empty in ("", "   \n"):
        with pytest.raises(PodiumError, match="transcript.*Whisper"):
            tts_f5.clone(f5, text, files / "ref.wav", empty)
    (tmp_path / "noise.wav").write_bytes(b"not audio at all" * 100)
    with pytest.raises(PodiumError, match="could not read the reference audio"):
        tts_f5.clone(f5, text, tmp_path / "noise.wav", REF_TEXT)


def test_other_formats_are_converted(f5, files, tmp_path):
    flac = tts_f5.clone(f5, script(["From a FLAC file."]), files / "ref.flac", REF_TEXT, nfe_step=2, seed=7)
    assert len(flac.sentences) == 1 and flac.duration > 0.5
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("no ffmpeg for the AAC case")
    m4a = tmp_path / "ref.m4a"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(files / "ref.wav"), "-c:a", "aac", str(m4a)], check=True)
    assert len(tts_f5.reference_wav(m4a, tmp_path).read_bytes()) > 0  # ffmpeg route
    out = tts_f5.clone(f5, script(["From an AAC file."]), m4a, REF_TEXT, nfe_step=2, seed=7)
    assert len(out.sentences) == 1


def test_missing_model_files_are_named(files, tmp_path):
    with pytest.raises(PodiumError, match="vocoder config"):
        tts_f5.load_f5(files / "model_tiny.safetensors", files / "vocab.txt", tmp_path,
                       model_name=str(files / "tiny.yaml"))
    with pytest.raises(PodiumError, match="unknown F5-TTS model config"):
        tts_f5.load_f5(files / "model_tiny.safetensors", files / "vocab.txt", files / "vocos",
                       model_name="NoSuchModel")


def node_args(files, **overrides):
    args = dict(script=script(["The node speaks.", "Twice."]), reference_audio=str(files / "ref.wav"),
                ref_text=REF_TEXT, model=NO_MODEL, nfe_step=2, speed=1.0, seed=1, cross_fade=0.15,
                sentence_pause=0.3, ckpt_path=str(files / "model_tiny.safetensors"),
                vocoder_dir=str(files / "vocos"), model_config=str(files / "tiny.yaml"))
    return {**args, **overrides}


def test_node_returns_speech_and_audio(f5, files):
    speech, audio = PodiumF5VoiceClone().speak(**node_args(files))
    assert audio["sample_rate"] == RATE and tuple(audio["waveform"].shape) == (1, 1, len(speech.samples))
    assert len(speech.sentences) == 2


def test_node_takes_audio_input_and_registry_model(f5, files, tmp_path, monkeypatch):
    models = tmp_path / "models"
    (models / "tts" / "f5").mkdir(parents=True)
    shutil.copytree(files / "vocos", models / "tts" / "vocos-mel-24khz")
    for name in ("model_tiny.safetensors", "vocab.txt"):
        shutil.copy(files / name, models / "tts" / "f5" / name)
    entry = lambda id_, folder, names: {"id": id_, "kind": "f5-tts" if "tiny" in id_ else "vocoder",
                                        "folder": folder, "license": "MIT", "commercial_use": True,
                                        "files": [{"name": n} for n in names]}
    registry = {"models": [entry("f5-tiny", "tts/f5", ["model_tiny.safetensors", "vocab.txt"]),
                           entry("vocos-mel-24khz", "tts/vocos-mel-24khz", ["config.yaml", "pytorch_model.bin"])]}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(registry))
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(tmp_path / "models.yaml"))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(models))
    assert PodiumF5VoiceClone.INPUT_TYPES()["required"]["model"][0] == ["f5-tiny"]
    samples, rate = sf.read(files / "ref.wav", dtype="float32")
    audio_in = {"waveform": torch.from_numpy(samples).reshape(1, 1, -1).repeat(1, 2, 1), "sample_rate": rate}
    by_path, _ = PodiumF5VoiceClone().speak(**node_args(files, model="f5-tiny", ckpt_path="", vocoder_dir=""))
    by_audio, audio = PodiumF5VoiceClone().speak(**node_args(files, model="f5-tiny", ckpt_path="",
                                                             vocoder_dir="", reference_audio="", audio=audio_in))
    assert tuple(audio["waveform"].shape) == (1, 1, len(by_audio.samples))
    assert np.allclose(by_audio.samples, by_path.samples, atol=1e-3)  # the same voice, same seed


def test_node_validation(files):
    check = PodiumF5VoiceClone.VALIDATE_INPUTS
    assert check(reference_audio=str(files / "ref.wav"), ref_text=REF_TEXT) is True
    assert check(reference_audio=None, ref_text=None) is True  # linked inputs are checked at run time
    assert "Whisper" in check(reference_audio=str(files / "ref.wav"), ref_text="  ")
    assert "not found" in check(reference_audio=str(files / "nope.wav"), ref_text=REF_TEXT)
    assert "not found" in check(reference_audio="", ref_text=REF_TEXT, vocoder_dir="/no/such/dir")
    with pytest.raises(PodiumError, match="reference_audio"):
        PodiumF5VoiceClone().speak(**node_args(files, reference_audio=""))
    with pytest.raises(PodiumError, match="Whisper"):
        PodiumF5VoiceClone().speak(**node_args(files, ref_text=""))
