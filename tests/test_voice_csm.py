"""The commercially usable cloned voice (Sesame CSM-1B) through the real loaders: a tiny
random-weight CsmForConditionalGeneration with its processor (tests/tiny_csm.py) in the folder
models.yaml names for csm-1b, found through $PODIUM_MODELS_DIR as a user's download would be,
read by transformers offline. Exact rate, bounded length, seeds, bad input, the node and the
cloned_voice workflow in-process. Nothing may touch the network."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
torch = pytest.importorskip("torch")
import soundfile as sf  # noqa: E402

import tiny_csm  # noqa: E402
from conftest import requires_comfyui  # noqa: E402
from orchestrator.render import embedded  # noqa: E402
from orchestrator.render.local import PromptError  # noqa: E402
from orchestrator.graphs.workflow import find_node, load_workflow  # noqa: E402
from podium.engines import voice_csm as engine  # noqa: E402
from podium.engines.script import Script, Segment  # noqa: E402
from podium.errors import ModelMissingError, PodiumError  # noqa: E402
from podium.memory import get_manager  # noqa: E402
from podium.models import load_registry  # noqa: E402
from podium.nodes.comfy_types import audio_from_samples  # noqa: E402
from podium.nodes.voice_csm import PodiumCsmVoiceClone  # noqa: E402

RATE = engine.SAMPLE_RATE
FRAME = int(RATE / engine.FRAME_RATE)  # 1920 samples a code frame
REF_TEXT = "Hello there, this is my voice."
REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection beyond loopback (the live ComfyUI) fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    connect = socket.socket.connect

    def refuse(sock, address, *args):
        loopback = isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost")
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not loopback:
            raise AssertionError(f"network access attempted: {address}")
        return connect(sock, address, *args)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A models dir holding the tiny model where models.yaml puts csm-1b."""
    root = tmp_path_factory.mktemp("models")
    folder = tiny_csm.build(root / load_registry().get("csm-1b").folder)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PODIUM_MODELS_DIR", str(root))
        yield root
    get_manager().evict(f"csm:{folder.resolve()}")


@pytest.fixture(scope="module")
def csm(models_dir):
    from podium.nodes.voice_csm import model_folder

    return engine.load_csm(model_folder("csm-1b"))


def voice_like(seconds: float, f0: float = 140.0) -> np.ndarray:
    """Harmonics of f0 under a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8))
    return (0.1 * tone * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


@pytest.fixture
def reference(tmp_path):
    path = tmp_path / "me.wav"
    sf.write(str(path), voice_like(2.0), RATE, subtype="PCM_16")
    return path


SCRIPT = Script("t", [Segment(["Hi there.", "Good to see you."]), Segment(["Bye."])])


def test_the_real_loader_reads_the_published_layout(csm):
    from transformers import CsmForConditionalGeneration, CsmProcessor

    assert isinstance(csm.model, CsmForConditionalGeneration) and isinstance(csm.processor, CsmProcessor)
    # the rate the engine assumes is the codec's and the feature extractor's
    assert RATE == csm.model.config.codec_config.sampling_rate == csm.processor.feature_extractor.sampling_rate
    assert engine.load_csm(csm_folder()) is csm  # cached by the memory manager


def csm_folder():
    from podium.nodes.voice_csm import model_folder

    return model_folder("csm-1b")


def test_the_reference_is_a_turn_of_the_same_speaker(csm):
    inputs = engine.prompt(csm, voice_like(1.0), REF_TEXT, "Hi there.")
    text = csm.processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|begin_of_text|>[0]Hello there, this is my voice.<|end_of_text|><|AUDIO|>")
    assert text.endswith("<|audio_eos|><|begin_of_text|>[0]Hi there.<|end_of_text|>")
    assert tuple(inputs["input_values"].shape) == (1, 1, RATE)  # the reference, at 24 kHz


def test_clone_speaks_each_sentence_at_the_codec_rate_within_its_bound(csm, reference):
    speech = engine.clone(csm, SCRIPT, reference, REF_TEXT, seed=3)
    assert speech.sample_rate == RATE and speech.samples.dtype == np.float32
    assert np.isfinite(speech.samples).all() and float(np.sqrt(np.mean(speech.samples ** 2))) > 1e-3
    assert [s.text for s in speech.sentences] == ["Hi there.", "Good to see you.", "Bye."]
    assert [s.segment for s in speech.sentences] == [0, 0, 1]
    for span in speech.sentences:
        samples = round((span.end - span.start) * RATE)
        assert 0 < samples <= engine.max_frames(span.text) * FRAME and samples % FRAME == 0, span
    assert len(speech.samples) / RATE == pytest.approx(speech.sentences[-1].end, abs=0.3)


def test_same_seed_same_audio(csm, reference):
    script = Script("t", [Segment(["Hi there."])])
    a = engine.clone(csm, script, reference, REF_TEXT, seed=7)
    b = engine.clone(csm, script, reference, REF_TEXT, seed=7)
    c = engine.clone(csm, script, reference, REF_TEXT, seed=8)
    assert np.array_equal(a.samples, b.samples)
    assert not np.array_equal(a.samples, c.samples)


def test_bad_input_is_one_clear_line(csm, reference, tmp_path):
    script = Script("t", [Segment(["Hi."])])
    with pytest.raises(PodiumError, match="ref_text is empty"):
        engine.clone(csm, script, reference, "  ")
    with pytest.raises(PodiumError, match="reference audio not found"):
        engine.clone(csm, script, tmp_path / "nope.wav", REF_TEXT)
    short, silent = tmp_path / "short.wav", tmp_path / "silent.wav"
    sf.write(str(short), voice_like(0.5), RATE)
    sf.write(str(silent), np.zeros(2 * RATE, np.float32), RATE)
    with pytest.raises(PodiumError, match=r"short.wav is 0.5 s long: give 1-30 s"):
        engine.clone(csm, script, short, REF_TEXT)
    with pytest.raises(PodiumError, match="silent.wav is silent"):
        engine.clone(csm, script, silent, REF_TEXT)
    with pytest.raises(PodiumError, match="temperature must be above 0"):
        engine.clone(csm, script, reference, REF_TEXT, temperature=0)
    notes = tmp_path / "notes.wav"
    notes.write_text("not audio")
    with pytest.raises(PodiumError, match="could not read the reference audio notes.wav") as err:
        engine.clone(csm, script, notes, REF_TEXT)
    assert "\n" not in str(err.value)


def test_a_reference_at_another_rate_is_resampled(csm, tmp_path):
    ref = tmp_path / "me44.flac"
    sf.write(str(ref), np.stack([voice_like(2.0)] * 2, axis=1)[: int(2.0 * RATE)], 44100)  # stereo, 44.1 kHz
    assert len(engine.read_reference(ref)) == pytest.approx(2.0 * RATE * RATE / 44100, abs=2)


def test_missing_model_names_the_pull_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path))
    ref = tmp_path / "me.wav"
    sf.write(str(ref), voice_like(2.0), RATE)
    with pytest.raises(ModelMissingError) as err:
        PodiumCsmVoiceClone().speak(SCRIPT, str(ref), REF_TEXT, "csm-1b", 0.9, 50, 0, 0.3)
    assert "podium models pull csm-1b" in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "half").mkdir()
    for name in ("config.json", "tokenizer.json"):  # a download cut short
        (tmp_path / "half" / name).write_text("{}")
    with pytest.raises(ModelMissingError, match=r"model.safetensors not found. Download it with `podium models pull csm-1b`"):
        engine.load_csm(tmp_path / "half")


def test_the_node_clones_from_a_file_or_an_audio_input(models_dir, reference):
    node = PodiumCsmVoiceClone()
    assert node.VALIDATE_INPUTS(reference_audio=str(reference), ref_text=" ") == engine.EMPTY_REF_TEXT
    assert node.VALIDATE_INPUTS(reference_audio=str(reference), ref_text=REF_TEXT) is True
    script = Script("t", [Segment(["Hi there."])])
    speech, audio = node.speak(script, str(reference), REF_TEXT, "csm-1b", 0.9, 50, 5, 0.3)
    assert audio["sample_rate"] == RATE and audio["waveform"].shape[-1] == len(speech.samples)
    samples, _ = sf.read(str(reference), dtype="float32")
    linked, _ = node.speak(script, "", REF_TEXT, "csm-1b", 0.9, 50, 5, 0.3, audio=audio_from_samples(samples, RATE))
    assert np.array_equal(linked.samples, speech.samples)  # the same reference, the same seed


def test_the_cloned_voice_workflow_runs_in_process(models_dir, reference, tmp_path):
    graph = load_workflow("cloned_voice")
    voice = graph[find_node(graph, "Voice")]
    assert voice["class_type"] == "PodiumCsmVoiceClone" and voice["inputs"]["model"] == "csm-1b"
    graph[find_node(graph, "Script")]["inputs"]["text"] = "Hi there. Bye."
    voice["inputs"].update(reference_audio=str(reference), ref_text=REF_TEXT, seed=2)
    outputs = embedded.run_graph(graph, tmp_path / "out")
    (item,) = [i for ui in outputs.values() for i in ui.get("audio", [])]
    info = sf.info(str(tmp_path / "out" / item["subfolder"] / item["filename"]))
    assert info.samplerate == RATE and 0 < info.duration <= 2 * 2.4 + 1.0
    voice["inputs"]["ref_text"] = ""
    with pytest.raises(PromptError, match="ref_text is empty"):  # refused before anything runs
        embedded.run_graph(graph, tmp_path / "out2")
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").rglob("*.flac"))


@pytest.mark.comfyui
@requires_comfyui
def test_the_cloned_voice_workflow_runs_in_comfyui_like_in_process(models_dir, reference, tmp_path):
    """cloned_voice in a live ComfyUI (the tiny model found through $PODIUM_MODELS_DIR and placed
    by ComfyUI's model management, the reference taken from its input folder): the audio it
    serves is the in-process runner's."""
    import shutil

    import requests
    from conftest import COMFYUI_DIR, comfyui_server, run_prompt

    args = [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(REPO),
            "--database-url", "sqlite:///:memory:"]
    for name in ("output", "temp", "user", "input"):
        (tmp_path / name).mkdir()
        args += [f"--{name}-directory", str(tmp_path / name)]
    shutil.copy(reference, tmp_path / "input" / "me.wav")
    graph = load_workflow("cloned_voice")
    graph[find_node(graph, "Script")]["inputs"]["text"] = "Hi there."
    graph[find_node(graph, "Voice")]["inputs"].update(reference_audio="me.wav", ref_text=REF_TEXT, seed=4)
    env = {**os.environ, "PODIUM_MODELS_DIR": str(models_dir), "HF_HUB_OFFLINE": "1"}
    with comfyui_server(args, cwd=tmp_path, log_path=tmp_path / "comfyui.log", env=env) as comfy:
        entry, _ = run_prompt(comfy, graph)
        assert entry["status"]["status_str"] == "success", entry["status"]
        (item,) = [i for ui in entry["outputs"].values() for i in ui.get("audio", [])]
        served = requests.get(comfy["url"] + "/view", params={k: item[k] for k in ("filename", "subfolder", "type")})
        assert served.status_code == 200
    (tmp_path / "theirs.flac").write_bytes(served.content)
    theirs, rate = sf.read(str(tmp_path / "theirs.flac"), dtype="float32")
    graph[find_node(graph, "Voice")]["inputs"]["reference_audio"] = str(reference)
    outputs = embedded.run_graph(graph, tmp_path / "local")
    (mine,) = [i for ui in outputs.values() for i in ui.get("audio", [])]
    ours, _ = sf.read(str(tmp_path / "local" / mine["subfolder"] / mine["filename"]), dtype="float32")
    assert rate == RATE and theirs.shape == ours.shape and len(ours) > 0
    assert np.allclose(theirs, ours, atol=1e-3)


def test_sharded_weights_load_and_speak_the_same(csm, reference, tmp_path):
    """A checkpoint over save_pretrained's shard size comes as shards and an index."""
    folder = tiny_csm.build(tmp_path / "sharded", max_shard_size="100KB")
    assert not (folder / "model.safetensors").exists() and (folder / "model.safetensors.index.json").is_file()
    sharded = engine.load_csm(folder)
    try:
        script = Script("t", [Segment(["Hi there."])])
        ours = engine.clone(sharded, script, reference, REF_TEXT, seed=9)
        assert np.array_equal(ours.samples, engine.clone(csm, script, reference, REF_TEXT, seed=9).samples)
    finally:
        get_manager().evict(f"csm:{folder.resolve()}")
