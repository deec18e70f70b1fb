"""paths.py and the nodes that read files: inside ComfyUI (a stand-in folder_paths here; the
real one in tests/test_comfyui_install.py) every path input resolves inside the input folder
(model paths: or the model folders) and anything else gets one neutral message; outside ComfyUI
the user's own paths are kept."""
from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from conftest import draw_portrait, requires_comfyui
from podium import paths
from podium.errors import PodiumError
from podium.nodes.lipsync import PodiumLipSync
from podium.nodes.presenter import PodiumPresenter
from podium.nodes.voice import PodiumPiperTTS
from podium.nodes.voice_clone import PodiumF5VoiceClone


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """A stand-in for ComfyUI's folder_paths: input/, models/ with tts and lipsync registered."""
    root = tmp_path / "ComfyUI"
    (root / "input").mkdir(parents=True)
    (root / "models" / "tts" / "piper").mkdir(parents=True)
    (root / "models" / "lipsync").mkdir(parents=True)
    registered = {"tts": [str(root / "models" / "tts")], "lipsync": [str(root / "models" / "lipsync")]}
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(root / "models")
    fp.get_input_directory = lambda: str(root / "input")
    fp.get_output_directory = lambda: str(root / "output")

    def get_folder_paths(name):
        return list(registered[name])

    fp.get_folder_paths = get_folder_paths
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    monkeypatch.delenv("PODIUM_MODELS_DIR", raising=False)
    return root


def secrets(tmp_path: Path, comfy: Path) -> dict:
    """Readable files outside the input folder, a link out of it, and an unreadable one."""
    outside = draw_portrait(tmp_path / "outside.png")
    (comfy / "secret.png").write_bytes(outside.read_bytes())
    os.symlink(outside, comfy / "input" / "link.png")
    locked = draw_portrait(comfy / "input" / "locked.png")
    locked.chmod(0)
    return {"absolute": str(outside), "dotdot": "../secret.png", "deep": "../../outside.png",
            "home": "~/outside.png", "link": "link.png", "missing": "missing.png",
            "empty-ish": " ", "nul": "face\0.png",
            **({"unreadable": "locked.png"} if not os.access(locked, os.R_OK) else {})}


def test_inside_comfyui_only_the_input_folder_is_read_and_refusals_read_the_same(comfy, tmp_path):
    draw_portrait(comfy / "input" / "face.png")
    (comfy / "input" / "sub").mkdir()
    draw_portrait(comfy / "input" / "sub" / "face.png")
    assert paths.resolve_input("face.png", "portrait_path") == (comfy / "input" / "face.png").resolve()
    assert paths.resolve_input("sub/face.png [input]", "portrait_path") == (comfy / "input/sub/face.png").resolve()
    assert paths.resolve_input("sub/../face.png", "portrait_path") == (comfy / "input" / "face.png").resolve()
    messages = set()
    for case, value in secrets(tmp_path, comfy).items():
        with pytest.raises(PodiumError) as refused:
            paths.resolve_input(value, "portrait_path")
        messages.add(str(refused.value).replace(repr(value.strip()), "<value>"))
    assert len(messages) == 1, messages
    assert messages.pop() == ("portrait_path <value> is not a file this server can use: give the name "
                              "of a file in ComfyUI's input folder (upload it there first)")


def test_presenter_validation_refuses_outside_paths_with_the_neutral_message(comfy, tmp_path):
    outside = draw_portrait(tmp_path / "outside.png")
    draw_portrait(comfy / "input" / "face.png")
    answers = {v: PodiumPresenter.VALIDATE_INPUTS(portrait_path=v)
               for v in (str(outside), "../../outside.png", "nothere.png")}
    assert all(isinstance(a, str) and "input folder" in a for a in answers.values()), answers
    assert len({a.replace(repr(v), "") for v, a in answers.items()}) == 1
    assert PodiumPresenter.VALIDATE_INPUTS(portrait_path="face.png") is True


def test_model_paths_resolve_in_the_model_folders_too(comfy, tmp_path):
    voice = comfy / "models" / "tts" / "piper" / "mine.onnx"
    voice.write_bytes(b"x")
    uploaded = comfy / "input" / "podium" / "abc" / "up.onnx"
    uploaded.parent.mkdir(parents=True)
    uploaded.write_bytes(b"x")
    (tmp_path / "evil.onnx").write_bytes(b"x")
    assert paths.resolve_input("mine.onnx", "voice_path", models="tts/piper") == voice.resolve()
    assert paths.resolve_input("piper/mine.onnx", "voice_path", models="tts/piper") == voice.resolve()
    assert paths.resolve_input("podium/abc/up.onnx", "voice_path", models="tts/piper") == uploaded.resolve()
    for value in (str(tmp_path / "evil.onnx"), "../../../evil.onnx", "evil.onnx"):
        with pytest.raises(PodiumError, match="input folder or its models/tts folders"):
            paths.resolve_input(value, "voice_path", models="tts/piper")


def test_nodes_refuse_voices_models_and_references_from_outside(comfy, tmp_path):
    (tmp_path / "evil.onnx").write_bytes(b"x")
    evil = str(tmp_path / "evil.onnx")
    with pytest.raises(PodiumError, match="voice_path .* not a file this server can use"):
        PodiumPiperTTS().speak(None, "piper-en_US-joe-medium", 1.0, 0.3, voice_path=evil)
    with pytest.raises(PodiumError, match="speaker_voices .* not a file this server can use"):
        PodiumPiperTTS().speak(None, "piper-en_US-joe-medium", 1.0, 0.3, speaker_voices=f"Bob: {evil}")
    with pytest.raises(PodiumError, match="model_path .* not a file this server can use"):
        PodiumLipSync().sync(None, None, 25, "x", 0, 0, 0, 0, 1, 1, "haar", model_path=evil)
    answer = PodiumF5VoiceClone.VALIDATE_INPUTS(reference_audio="/etc/hostname", ref_text="hi")
    assert "reference_audio '/etc/hostname' is not a file this server can use" in answer
    answer = PodiumF5VoiceClone.VALIDATE_INPUTS(ref_text="hi", ckpt_path=evil)
    assert "ckpt_path" in answer and "models/tts" in answer


def test_outside_comfyui_the_users_own_paths_are_kept(tmp_path, monkeypatch):
    assert "folder_paths" not in sys.modules and not paths.confined()
    mine = draw_portrait(tmp_path / "mine.png")
    assert paths.resolve_input(str(mine)) == mine
    monkeypatch.chdir(tmp_path)
    assert paths.resolve_input("mine.png") == tmp_path / "mine.png"
    assert PodiumPresenter.VALIDATE_INPUTS(portrait_path=str(mine)) is True


def test_the_cli_uploads_a_voice_with_its_config_side_by_side(tmp_path):
    """A .onnx voice given to a server goes by upload, its .onnx.json beside it under the same
    name (a folder named by their content), uploaded once per server."""
    from fake_comfy import FakeComfy
    from orchestrator.servers.remote import ComfyInstance

    voice = tmp_path / "mine.onnx"
    voice.write_bytes(b"onnx bytes")
    Path(f"{voice}.json").write_text('{"audio": {"sample_rate": 22050}}')
    server = FakeComfy(tmp_path / "server").start()
    try:
        instance = ComfyInstance(server.url)
        name = instance._upload(voice)
        assert name.startswith("podium/") and name.endswith("/mine.onnx") and name.count("/") == 2
        folder = tmp_path / "server" / "input" / Path(name).parent
        assert (folder / "mine.onnx").read_bytes() == b"onnx bytes"
        assert (folder / "mine.onnx.json").read_text() == Path(f"{voice}.json").read_text()
        assert instance._upload(voice) == name
        picture = draw_portrait(tmp_path / "face.png")
        assert instance._upload(picture) == "podium/face.png"  # no companion: the usual folder
    finally:
        server.stop()


@requires_comfyui
def test_inside_comfyui_its_own_reading_of_the_prefix_names_outputs(tmp_path):
    """ComfyUI's folder_paths.get_save_image_path reads a save node's prefix (%year%, subfolders,
    the output-folder check); the number is Podium's (<stem>_00001.<ext>, then _00002)."""
    import subprocess
    import textwrap
    import time

    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.environ["COMFYUI_DIR"]!r})
        import folder_paths
        folder_paths.set_output_directory({str(tmp_path)!r})
        from podium import paths
        first = paths.next_output_path("talks/%year%/clip", "mp4")
        first[0].write_bytes(b"x")
        second = paths.next_output_path("talks/%year%/clip", "mp4")
        print(first[1], first[2], second[2])
        try:
            paths.next_output_path("../escape/clip", "mp4")
        except ValueError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"talks/{time.localtime().tm_year} clip_00001.mp4 clip_00002.mp4"
    assert lines[1] == "filename_prefix '../escape/clip' points outside the output folder"
    assert not (tmp_path.parent / "escape").exists()
