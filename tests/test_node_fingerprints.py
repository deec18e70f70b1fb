"""IS_CHANGED of every node that reads a file or makes a new result each run (issue 19.2), and
the upload combos over the input folder (19.3). Inside ComfyUI a stand-in folder_paths (the real
server in tests/test_comfyui_fresh.py)."""
from __future__ import annotations

import math
import mimetypes
import os
import sys
import types
from pathlib import Path

import pytest

from conftest import draw_portrait
from podium.nodes import NODE_CLASS_MAPPINGS as NODES
from podium.nodes import fingerprint

# the nodes whose inputs name files or models, or that make something new each run
READERS = {"PodiumPresenter", "PodiumIdleClip", "PodiumPiperTTS", "PodiumF5VoiceClone", "PodiumLipSync",
           "PodiumMuseTalk", "PodiumUpscale", "PodiumUpscaleImage", "PodiumPresenterImage",
           "PodiumMusicGenerate", "PodiumSoundEffect", "PodiumMusicFile", "PodiumOllamaSettings", "PodiumScene"}


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """A stand-in for ComfyUI's folder_paths with an input folder (content types by extension,
    as ComfyUI's filter_files_content_types does with mimetypes)."""
    root = tmp_path / "ComfyUI"
    (root / "input").mkdir(parents=True)
    fp = types.ModuleType("folder_paths")
    fp.get_input_directory = lambda: str(root / "input")
    fp.get_output_directory = lambda: str(root / "output")
    fp.get_folder_paths = lambda name: []

    def filter_files_content_types(files, content_types):
        return [f for f in files if (mimetypes.guess_type(f)[0] or "").split("/")[0] in content_types]

    fp.filter_files_content_types = filter_files_content_types
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    return root / "input"


def rewrite_keeping_size_and_time(path: Path, data: bytes) -> None:
    """New bytes under the same name, size and modification time: only the content tells."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def flipped(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    return bytes(data)


FILE_INPUTS = {"file", "deck", "notes", "voice", "model", "vae", "whisper", "speaker_voices"}


def names_a_file(name: str) -> bool:
    return name in FILE_INPUTS or name.endswith(("_path", "_dir", "_folder", "_audio", "_config"))


def test_every_node_that_reads_a_file_or_draws_anew_says_when_it_changed():
    changed = {name for name, cls in NODES.items() if hasattr(cls, "IS_CHANGED")}
    assert READERS <= changed
    for name, cls in NODES.items():
        inputs = {k: v for group in cls.INPUT_TYPES().values() for k, v in group.items()}
        files = [k for k, spec in inputs.items()
                 if names_a_file(k) and (spec[0] == "STRING" or isinstance(spec[0], list))]
        assert not files or name in changed, f"{name} reads {files} but has no IS_CHANGED"


@pytest.mark.parametrize("node, name", [("PodiumPresenter", "portrait_path"),
                                        ("PodiumIdleClip", "portrait_path"),
                                        ("PodiumIdleClip", "clip_path"),
                                        ("PodiumF5VoiceClone", "reference_audio"),
                                        ("PodiumMusicFile", "file")])
def test_media_inputs_are_fingerprinted_by_their_content(comfy, node, name):
    media = draw_portrait(comfy / "face.png")
    ask = lambda: NODES[node].IS_CHANGED(**{name: "face.png"})
    first = ask()
    assert ask() == first  # unchanged: ComfyUI serves its cache
    rewrite_keeping_size_and_time(media, flipped(media))
    assert ask() != first
    media.unlink()
    gone = ask()  # a missing file is an answer, not an exception (ComfyUI would log and re-run)
    assert gone != first and ask() == gone


def test_outside_the_input_folder_nothing_is_read_even_to_fingerprint(comfy, tmp_path):
    secret = draw_portrait(tmp_path / "secret.png")
    answer = NODES["PodiumPresenter"].IS_CHANGED(portrait_path=str(secret))
    assert "not a file this server can use" in answer and fingerprint.sha256_file(secret) not in answer


def make_model_files(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"weights " + name.encode())
        paths.append(folder / name)
    return paths


def grow(path: Path) -> None:
    with open(path, "ab") as f:
        f.write(b"more")


MODEL_CASES = {
    "PiperTTS voice_path (and its .onnx.json)": (
        "PodiumPiperTTS", ["v.onnx", "v.onnx.json"], lambda d: {"voice": "x", "voice_path": str(d / "v.onnx")}, 1),
    "F5 checkpoint, vocab and vocoder": (
        "PodiumF5VoiceClone", ["ckpt.safetensors", "vocab.txt", "vocos/config.yaml"],
        lambda d: {"model": "none (use ckpt_path)", "ckpt_path": str(d / "ckpt.safetensors"),
                   "vocab_path": str(d / "vocab.txt"), "vocoder_dir": str(d / "vocos"),
                   "model_config": "F5TTS_v1_Base"}, 2),
    "Wav2Lip model_path": ("PodiumLipSync", ["w.onnx"], lambda d: {"model": "x", "model_path": str(d / "w.onnx")}, 0),
    "Upscale model_path": ("PodiumUpscale", ["x2.pth"], lambda d: {"model": "x", "model_path": str(d / "x2.pth")}, 0),
    "Upscale Image model_path": ("PodiumUpscaleImage", ["x2.pth"],
                                 lambda d: {"model": "x", "model_path": str(d / "x2.pth")}, 0),
    "diffusers model_folder": ("PodiumPresenterImage", ["sd/model_index.json", "sd/unet/w.safetensors"],
                               lambda d: {"model": "x", "model_folder": str(d / "sd")}, 1),
    "identity LoRA": ("PodiumPresenterImage", ["sd/model_index.json", "id.safetensors"],
                      lambda d: {"model": "x", "model_folder": str(d / "sd"), "lora_path": str(d / "id.safetensors")}, 1),
    "Wan model_folder of the idle clip": ("PodiumIdleClip", ["wan/model_index.json", "wan/vae/w.bin"],
                                          lambda d: {"model": "x", "model_folder": str(d / "wan")}, 1),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_files_are_fingerprinted_by_path_size_and_time(tmp_path, case):
    node, names, inputs, changed = MODEL_CASES[case]
    files = make_model_files(tmp_path / "models", *names)
    ask = lambda: NODES[node].IS_CHANGED(**inputs(tmp_path / "models"))
    first = ask()
    assert ask() == first and "unavailable" not in str(first), first
    grow(files[changed])  # a new model under the same name: another size (and time)
    assert ask() != first
    files[changed].unlink()
    assert "unavailable" in str(ask()) or ask() != first


def test_registry_models_are_fingerprinted_where_they_lie(tmp_path, monkeypatch):
    from podium.nodes import music, musetalk

    files = make_model_files(tmp_path / "ace", "model_index.json", "transformer/w.safetensors")
    monkeypatch.setattr(music, "entry_path", lambda model, folder=False: files[0].parent if model == "ace" else 1 / 0)
    first = NODES["PodiumMusicGenerate"].IS_CHANGED(model="ace")
    assert first == NODES["PodiumSoundEffect"].IS_CHANGED(model="ace") and "unavailable" not in first
    grow(files[1])
    assert NODES["PodiumMusicGenerate"].IS_CHANGED(model="ace") != first
    assert "unavailable" in NODES["PodiumMusicGenerate"].IS_CHANGED(model="other")

    unet = make_model_files(tmp_path / "mt", "unet.pth", "musetalk.json")
    vae = make_model_files(tmp_path / "vae", "config.json")
    monkeypatch.setattr(musetalk, "installed_files", lambda model: unet)
    monkeypatch.setattr(musetalk, "_folder", lambda model: vae[0].parent)
    first = NODES["PodiumMuseTalk"].IS_CHANGED(model="m", vae="v", whisper="w")
    grow(vae[0])
    assert NODES["PodiumMuseTalk"].IS_CHANGED(model="m", vae="v", whisper="w") != first


def test_seed_minus_one_makes_a_new_script_every_run_and_a_fixed_seed_is_cached():
    settings = NODES["PodiumOllamaSettings"]
    anew = settings.IS_CHANGED(seed=-1)
    assert isinstance(anew, float) and math.isnan(anew) and anew != anew  # equal to nothing: never cached
    assert settings.IS_CHANGED(seed=7) == settings.IS_CHANGED(seed=7)


def test_upload_combos_list_the_input_folder_and_take_any_confined_name(comfy, tmp_path):
    draw_portrait(comfy / "face.png")
    (comfy / "bed.mp3").write_bytes(b"ID3")
    (comfy / "notes.txt").write_text("x")
    (comfy / "podium").mkdir()
    draw_portrait(comfy / "podium" / "uploaded.png")  # where the orchestrator uploads
    portrait = NODES["PodiumPresenter"].INPUT_TYPES()["required"]["portrait_path"]
    assert portrait[0] == ["", "face.png"] and portrait[1]["image_upload"] is True
    music = NODES["PodiumMusicFile"].INPUT_TYPES()["required"]["file"]
    assert music[0] == ["bed.mp3"] and music[1]["podium_audio_upload"] is True
    reference = NODES["PodiumF5VoiceClone"].INPUT_TYPES()["required"]["reference_audio"]
    assert reference[0] == ["", "bed.mp3"]
    # a path string not in the list still validates (the node's VALIDATE_INPUTS takes the
    # input, so ComfyUI leaves the list check to it), but only inside the input folder
    assert NODES["PodiumPresenter"].VALIDATE_INPUTS(portrait_path="podium/uploaded.png") is True
    assert NODES["PodiumMusicFile"].VALIDATE_INPUTS(file="bed.mp3") is True
    draw_portrait(tmp_path / "secret.png")
    for value in ("../../secret.png", str(tmp_path / "secret.png")):
        assert "not a file this server can use" in NODES["PodiumMusicFile"].VALIDATE_INPUTS(file=value)
    assert "not found" in NODES["PodiumMusicFile"].VALIDATE_INPUTS(file="podium") or \
        "not a file" in NODES["PodiumMusicFile"].VALIDATE_INPUTS(file="podium")


def test_outside_comfyui_the_combos_offer_nothing_but_take_paths(monkeypatch):
    monkeypatch.delitem(sys.modules, "folder_paths", raising=False)
    portrait = NODES["PodiumPresenter"].INPUT_TYPES()["required"]["portrait_path"]
    assert portrait[0] == [""] and portrait[1]["default"] == ""
    assert NODES["PodiumMusicFile"].INPUT_TYPES()["required"]["file"][0] == ["music.mp3"]
