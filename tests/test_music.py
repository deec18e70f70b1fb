"""Music and sound effects: tiny random-weight ACE-Step 1.5 and Stable Audio Open pipelines
(tests/tiny_music.py) in the folders models.yaml names, loaded by the engine's real loader
offline; exact lengths, seeds, the missing-model error, the nodes, and workflows/music.json and
sfx.json run in-process (and in a live ComfyUI when COMFYUI_DIR is set)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before huggingface_hub reads it
torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
if not hasattr(diffusers, "AceStepPipeline"):
    pytest.skip("diffusers without AceStepPipeline (needs >= 0.38)", allow_module_level=True)
import soundfile  # noqa: E402

import tiny_music  # noqa: E402
from conftest import COMFYUI_DIR, ffprobe, requires_comfyui  # noqa: E402
from orchestrator.render import embedded  # noqa: E402
from orchestrator.render.local import ExecutionError  # noqa: E402
from podium import profiling  # noqa: E402
from podium.engines.music import generate, load_pipeline, n_samples, sound_effect  # noqa: E402
from podium.errors import ModelMissingError, PodiumError  # noqa: E402
from podium.memory import get_manager  # noqa: E402
from podium.models import load_registry  # noqa: E402
from podium.nodes.music import PodiumMusicGenerate, PodiumSoundEffect  # noqa: E402
from podium.nodes.output import PodiumSaveAudio  # noqa: E402
from podium import paths  # noqa: E402
from orchestrator.graphs.workflow import load_workflow  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL, SAO = "acestep-v15-xl-turbo", "stable-audio-open-1.0"
RATE = tiny_music.SAMPLE_RATE


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection beyond loopback (the live ComfyUI) fails the test."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    connect, create_connection = socket.socket.connect, socket.create_connection

    def loopback(address) -> bool:
        return isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1", "localhost")

    def refuse_connect(sock, address, *args):
        if not loopback(address):
            raise AssertionError(f"network access attempted: {address}")
        return connect(sock, address, *args)

    def refuse_create(address, *args, **kwargs):
        if not loopback(address):
            raise AssertionError(f"network access attempted: {address}")
        return create_connection(address, *args, **kwargs)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket, "create_connection", refuse_create)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A models dir holding the tiny pipelines where models.yaml puts the real ones."""
    root = tmp_path_factory.mktemp("models")
    folders = [root / load_registry().get(MODEL).folder, root / load_registry().get(SAO).folder]
    tiny_music.build(folders[0])
    tiny_music.build_stable_audio(folders[1])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PODIUM_MODELS_DIR", str(root))
        yield root
    for folder in folders:
        get_manager().evict(f"audio:{folder.resolve()}:float32")


@pytest.fixture
def pipe(models_dir):
    return load_pipeline(models_dir / load_registry().get(MODEL).folder)


@pytest.fixture
def sao(models_dir):
    return load_pipeline(models_dir / load_registry().get(SAO).folder)


def test_exact_length_at_the_pipeline_rate(pipe):
    assert pipe.sample_rate == RATE and pipe.is_turbo
    assert pipe.vae.use_tiling
    # 1.37 s is not a whole number of latents (25 per second); 21 s decodes in tiles (> 512 latents)
    for seconds in (1.0, 1.37, 21.0):
        audio, rate = generate(pipe, "calm piano", seconds, seed=1, steps=2)
        assert rate == RATE
        assert audio.shape == (2, n_samples(seconds, RATE)) and audio.dtype == np.float32
        assert np.isfinite(audio).all() and 0.1 < float(np.abs(audio).max()) <= 1.0


def test_same_seed_same_audio(pipe):
    a, _ = generate(pipe, "calm piano", 1.0, seed=7, steps=2)
    b, _ = generate(pipe, "calm piano", 1.0, seed=7, steps=2)
    c, _ = generate(pipe, "calm piano", 1.0, seed=8, steps=2)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    effect, _ = sound_effect(pipe, "calm piano", 1.0, seed=7, steps=2)  # prompted for a sound
    assert effect.shape == a.shape and not np.allclose(effect, a)


def test_stable_audio_exact_length_and_seed(sao):
    assert type(sao).__name__ == "StableAudioPipeline"
    for seconds in (1.0, 1.37):
        audio, rate = sound_effect(sao, "applause", seconds, seed=2, steps=3)
        assert rate == RATE and audio.shape == (2, n_samples(seconds, RATE))
        assert np.isfinite(audio).all() and float(np.abs(audio).max()) > 0
    again, _ = sound_effect(sao, "applause", 1.37, seed=2, steps=3)
    other, _ = sound_effect(sao, "applause", 1.37, seed=3, steps=3)
    assert np.array_equal(audio, again) and not np.allclose(audio, other)
    with pytest.raises(PodiumError, match="at most 2.56 for this model"):  # 64 latents of 32 samples
        sound_effect(sao, "applause", 3.0)


def test_bad_input_is_one_clear_line(pipe):
    with pytest.raises(PodiumError, match="prompt is empty"):
        generate(pipe, "  ", 1.0)
    with pytest.raises(PodiumError, match="seconds must be more than 0"):
        generate(pipe, "piano", 0)
    with pytest.raises(PodiumError, match="at most 600"):
        generate(pipe, "piano", 601)
    with pytest.raises(PodiumError, match="sound-effect prompt is empty"):
        sound_effect(pipe, "", 1.0)


def test_missing_model_names_the_pull_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelMissingError) as err:
        PodiumMusicGenerate().make("piano", 1.0, 0, MODEL)
    message = str(err.value)
    assert "\n" not in message and f"podium models pull {MODEL}" in message
    with pytest.raises(ModelMissingError, match=f"podium models pull {MODEL}"):
        PodiumSoundEffect().make("applause", 1.0, 0, MODEL)
    (tmp_path / "half").mkdir()
    with pytest.raises(ModelMissingError, match="model_index.json not found"):
        load_pipeline(tmp_path / "half")


def test_nodes_return_comfy_audio(models_dir):
    assert PodiumMusicGenerate.INPUT_TYPES()["required"]["model"][0] == [MODEL]
    assert PodiumSoundEffect.INPUT_TYPES()["required"]["model"][0] == [MODEL, SAO]
    assert PodiumMusicGenerate.RETURN_TYPES == PodiumSoundEffect.RETURN_TYPES == ("AUDIO",)
    (audio,) = PodiumMusicGenerate().make("calm piano", 1.5, 3, MODEL, steps=2)
    assert audio["sample_rate"] == RATE
    assert tuple(audio["waveform"].shape) == (1, 2, 1200) and audio["waveform"].dtype == torch.float32
    assert profiling.reports[-1].name == "music"
    (effect,) = PodiumSoundEffect().make("applause", 0.5, 3, MODEL, steps=2)
    assert tuple(effect["waveform"].shape) == (1, 2, 400)
    assert profiling.reports[-1].name == "sound_effect"
    (effect,) = PodiumSoundEffect().make("door", 0.5, 3, SAO, steps=2)
    assert tuple(effect["waveform"].shape) == (1, 2, 400)


def _graph(name: str, title: str, **inputs) -> dict:
    graph = load_workflow(REPO / "workflows" / name)
    node = next(n for n in graph.values() if n["_meta"]["title"] == title)
    assert {"prompt", "seconds", "seed", "model"} <= set(node["inputs"])
    assert node["inputs"]["model"] == MODEL
    node["inputs"].update(inputs)
    return graph


@pytest.mark.parametrize("name, title, seconds", [("music.json", "Music", 1.5),
                                                  ("sfx.json", "Sound effect", 0.6)])
def test_workflow_runs_in_process(models_dir, tmp_path, name, title, seconds):
    graph = _graph(name, title, seconds=seconds, seed=5, steps=2)
    outputs = embedded.run_graph(graph, tmp_path)
    (item,) = [i for ui in outputs.values() for i in ui.get("audio", [])]
    path = tmp_path / item["subfolder"] / item["filename"]
    assert path.suffix == ".flac" and item["type"] == "output"
    info = soundfile.info(str(path))
    assert (info.samplerate, info.channels, info.frames) == (RATE, 2, n_samples(seconds, RATE))
    assert item["duration"] == pytest.approx(seconds)
    assert ffprobe(path, count_frames=False)["format"]["duration"] == pytest.approx(seconds, abs=1e-3)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_missing_model_through_the_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "empty"))
    with pytest.raises(ExecutionError) as err:
        embedded.run_graph(_graph("music.json", "Music", seconds=1.0), tmp_path / "out")
    assert err.value.podium_error is ModelMissingError
    assert f"podium models pull {MODEL}" in err.value.user_message()


def test_save_audio_formats_and_confinement(tmp_path):
    t = np.arange(RATE) / RATE
    stereo = np.stack([np.sin(2 * np.pi * 50 * t), 1.5 * np.sin(2 * np.pi * 75 * t)]).astype(np.float32)
    audio = {"waveform": torch.from_numpy(stereo)[None], "sample_rate": RATE}
    paths.set_output_directory(tmp_path)
    try:
        flac = PodiumSaveAudio().save(audio, "music/bed")["ui"]["audio"][0]
        wav = PodiumSaveAudio().save(audio, "music/bed", format="wav")["ui"]["audio"][0]
        assert (flac["filename"], wav["filename"]) == ("bed_00001.flac", "bed_00002.wav")
        back, rate = soundfile.read(str(tmp_path / "music" / wav["filename"]), dtype="float32", always_2d=True)
        assert rate == RATE and np.array_equal(back.T, stereo)  # float WAV keeps every value
        clipped, _ = soundfile.read(str(tmp_path / "music" / flac["filename"]), dtype="float32", always_2d=True)
        assert float(np.abs(clipped).max()) <= 1.0 and np.allclose(clipped[:, 0], stereo[0], atol=1e-6)
        with pytest.raises(ValueError, match="outside the output folder"):
            PodiumSaveAudio().save(audio, "../escape")
        with pytest.raises(PodiumError, match="format must be one of"):
            PodiumSaveAudio().save(audio, "music/bed", format="mp3")
        empty = {"waveform": torch.zeros(1, 2, 0), "sample_rate": RATE}
        with pytest.raises(PodiumError, match="empty"):
            PodiumSaveAudio().save(empty, "music/bed")
    finally:
        paths.set_output_directory(None)
    assert sorted(p.name for p in (tmp_path / "music").iterdir()) == ["bed_00001.flac", "bed_00002.wav"]
    assert not (tmp_path.parent / "escape_00001.flac").exists()




@pytest.mark.comfyui
@requires_comfyui
def test_workflows_run_in_comfyui_like_in_process(models_dir, tmp_path):
    """music.json and sfx.json in a live ComfyUI (the tiny model found through $PODIUM_MODELS_DIR,
    placed by ComfyUI's model management): the FLAC it serves is the in-process runner's."""
    import requests
    from conftest import comfyui_server, run_prompt

    args = [str(Path(COMFYUI_DIR, "main.py")), "--base-directory", str(REPO),
            "--database-url", "sqlite:///:memory:"]
    for name in ("output", "temp", "user", "input"):
        (tmp_path / name).mkdir()
        args += [f"--{name}-directory", str(tmp_path / name)]
    env = {**os.environ, "PODIUM_MODELS_DIR": str(models_dir), "HF_HUB_OFFLINE": "1"}
    cases = [("music.json", "Music", 1.2), ("sfx.json", "Sound effect", 0.4)]
    with comfyui_server(args, cwd=tmp_path, log_path=tmp_path / "comfyui.log", env=env) as comfy:
        for name, title, seconds in cases:
            graph = _graph(name, title, seconds=seconds, seed=11, steps=2)
            entry, _ = run_prompt(comfy, graph)
            assert entry["status"]["status_str"] == "success", entry["status"]
            (item,) = [i for ui in entry["outputs"].values() for i in ui.get("audio", [])]
            served = requests.get(comfy["url"] + "/view", params={k: item[k] for k in ("filename", "subfolder", "type")})
            assert served.status_code == 200
            (tmp_path / name).with_suffix(".flac").write_bytes(served.content)
            theirs, rate = soundfile.read(str((tmp_path / name).with_suffix(".flac")), dtype="float32")
            local_out = tmp_path / f"local-{title}"
            outputs = embedded.run_graph(graph, local_out)
            (mine,) = [i for ui in outputs.values() for i in ui.get("audio", [])]
            ours, _ = soundfile.read(str(local_out / mine["subfolder"] / mine["filename"]), dtype="float32")
            assert rate == RATE and theirs.shape == ours.shape == (n_samples(seconds, RATE), 2)
            assert np.allclose(theirs, ours, atol=1e-3)
