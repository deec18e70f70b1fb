"""Where finished segments are kept: --cache-dir, else $PODIUM_CACHE_DIR, else the platform's
user cache folder (platformdirs: $XDG_CACHE_HOME/podium/segments on Linux)."""
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.render.segments import default_cache_dir

REPO = Path(__file__).resolve().parents[1]


def test_default_cache_dir_follows_the_platform(monkeypatch, tmp_path):
    monkeypatch.delenv("PODIUM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert default_cache_dir() == tmp_path / "xdg" / "podium" / "segments"
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_a_run_without_a_cache_folder_fills_the_user_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PODIUM_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path / "home"))
    out = tmp_path / "v.mp4"
    result = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "generate", "--text", "Cached here.",
                             "--size", "160x90", "--quiet", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    expected = tmp_path / "xdg" / "podium" / "segments" if sys.platform.startswith("linux") else None
    if expected is not None:
        assert any(expected.iterdir())
    assert not (tmp_path / "home" / ".cache").exists() or expected is None
