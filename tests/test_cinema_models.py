"""`podium models pull ... --comfyui-dir DIR` fetches the cinema graphs' files into DIR/models/
<ComfyUI folder>/, where ComfyUI's own loaders list them. The registry is models.yaml's real
cinema entries with their URLs pointed at a real HTTP server on loopback
(tests/test_downloads.py's FileServer); nothing reaches the internet."""
from __future__ import annotations

import argparse

import pytest
import yaml

from orchestrator.servers import downloads
from orchestrator.cli import models as models_cli
from podium import models
from test_downloads import FileServer, payload  # noqa: E402

PULLED = ["wan22-s2v-fp8", "wav2vec2-large-english", "wan21-vae", "umt5-xxl-fp8"]


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


@pytest.fixture
def cinema_registry(server, tmp_path, monkeypatch):
    """The cinema entries of models.yaml, served from loopback (bytes made up, sizes kept null
    as in the real file: nothing is known to check but what arrives)."""
    real = yaml.safe_load(models.registry_path().read_text())["models"]
    entries = [e for e in real if "cinema" in (e.get("presets") or [])]
    for number, entry in enumerate(entries):
        for item in entry["files"]:
            server.files[item["name"]] = payload(3_000 + number, number)
            item["url"] = server.url(item["name"])
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": entries}))
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(path))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.01)
    return {e["id"]: e for e in entries}


def comfyui_install(folder):
    folder.mkdir()
    (folder / "main.py").write_text("# ComfyUI\n")
    (folder / "folder_paths.py").write_text("# ComfyUI\n")
    return folder


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="podium")
    models_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return models_cli.run(parser.parse_args(["models", *argv]))


def test_pull_into_a_comfyui_install_puts_each_file_in_its_comfyui_folder(cinema_registry, server, tmp_path, capsys):
    comfy = comfyui_install(tmp_path / "ComfyUI")
    assert cli("pull", *PULLED, "--quiet", "--comfyui-dir", str(comfy)) == 0
    out = capsys.readouterr().out
    expected = {
        "diffusion_models/wan2.2_s2v_14B_fp8_scaled.safetensors",
        "audio_encoders/wav2vec2_large_english_fp16.safetensors",
        "vae/wan_2.1_vae.safetensors",
        "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    }
    found = {str(p.relative_to(comfy / "models")) for p in (comfy / "models").rglob("*") if p.is_file()}
    assert found == expected
    for rel in expected:
        assert (comfy / "models" / rel).read_bytes() == server.files[rel.split("/")[1]]
    assert not (tmp_path / "elsewhere").exists()  # --comfyui-dir wins over $PODIUM_MODELS_DIR
    assert "wav2vec2-large-english is licensed" in out and "non-commercial" in out
    assert cli("list", "--preset", "cinema", "--comfyui-dir", str(comfy)) == 0
    table = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()
             if line and line.split()[0] in cinema_registry}
    assert all(table[i] == "yes" for i in PULLED) and table["wan22-s2v-bf16"] == "no"


def test_a_folder_that_is_not_comfyui_is_refused_in_one_line(cinema_registry, server, tmp_path, capsys):
    (tmp_path / "nope").mkdir()
    assert cli("pull", "wan21-vae", "--comfyui-dir", str(tmp_path / "nope")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a ComfyUI folder" in err[0] and "--models-dir" in err[0]
    assert not (tmp_path / "nope" / "models").exists() and not server.requests


def test_models_dir_and_comfyui_dir_do_not_go_together(tmp_path):
    with pytest.raises(SystemExit) as exit_:
        cli("list", "--models-dir", str(tmp_path), "--comfyui-dir", str(tmp_path))
    assert exit_.value.code == 2
