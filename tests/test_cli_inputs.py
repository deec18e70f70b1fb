"""Hostile or odd command lines (issue 18.13, 18.14): each is refused in one line (or, for a
stdout that cannot be written, the finished video still counts), nothing the user owns is
replaced, and Ctrl-C at any moment is exit 130 without a traceback."""
from __future__ import annotations

import os
import signal
import stat
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import one_error_line, run_cli, start_cli  # noqa: E402

SIZE = "160x90"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
) + "servers: *i\n"  # about 400 bytes; 9**9 (387 million) strings once expanded


def generate(tmp_path: Path, *args, timeout: float = 300) -> tuple[int, str, str]:
    return run_cli("generate", *args, "--size", SIZE, "--quiet", cwd=tmp_path, tmpdir=tmp_path / "scratch",
                   timeout=timeout)


def test_a_yaml_alias_bomb_config_is_refused_unexpanded(tmp_path):
    config = tmp_path / "servers.yaml"
    config.write_text(BOMB)
    rc, out, err = generate(tmp_path, "--text", "Hi there.", "--config", config, "--out", tmp_path / "v.mp4",
                            timeout=60)  # expanded, it took 34 s and 3 GB
    message = one_error_line(err)
    assert rc == 2 and "alias" in message and str(config) in message and len(message) < 400, message
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_a_guided_duration_that_is_no_length_is_a_usage_error(tmp_path, value):
    rc, out, err = generate(tmp_path, "--mode", "guided", "--topic", "Tides", f"--duration={value}",
                            "--out", tmp_path / "v.mp4", "--ollama-host", "http://127.0.0.1:9")
    assert rc == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]  # the request model's words: "a number" / "more than 0"
    assert line.startswith("error: --duration must be") and err.strip().count("\n") == 0, err


def test_the_engine_refuses_a_duration_that_is_not_finite():
    from podium.engines.guided import write_script
    from podium.errors import PodiumError

    for value in (float("nan"), float("inf")):
        with pytest.raises(PodiumError, match="positive number of seconds"):
            write_script("Tides", duration_s=value)


def test_a_script_that_is_a_device_or_a_fifo_is_refused_before_reading(tmp_path):
    fifo = tmp_path / "talk.txt"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    for script in ("/dev/zero", fifo):  # /dev/zero was read until MemoryError
        rc, out, err = generate(tmp_path, "--script", script, "--out", tmp_path / "v.mp4", timeout=60)
        message = one_error_line(err)
        assert rc == 2 and "not a regular file" in message and str(script) in message, message
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(16 * 2**20 + 1)  # sparse: no disk used
    rc, out, err = generate(tmp_path, "--script", big, "--out", tmp_path / "v.mp4", timeout=60)
    assert rc == 2 and "more than the 16.0 MiB allowed" in one_error_line(err), err


def test_ctrl_c_while_podium_is_still_loading_is_130_and_one_line(tmp_path):
    """SIGINT once the heavy imports have begun (pydantic's compiled core is mapped in): before,
    that was a KeyboardInterrupt traceback and exit -2."""
    process = start_cli("generate", "--text", "Hello there.", "--out", tmp_path / "v.mp4", "--size", SIZE,
                        "--quiet", cwd=tmp_path, tmpdir=tmp_path / "scratch")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if any("pydantic_core" in m.path for m in psutil.Process(process.pid).memory_maps()):
                    break
            except psutil.Error:
                pass
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "interrupted: nothing was written", err


def test_an_sfx_the_script_never_plays_is_refused(tmp_path):
    clap = tmp_path / "clap.wav"
    import numpy as np
    import soundfile

    soundfile.write(clap, np.zeros(800, np.float32), 8000)
    rc, out, err = generate(tmp_path, "--text", "Hello there. [sfx: applause] Thanks.", "--sfx",
                            f"aplause={clap}", "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2 and "--sfx aplause" in message and "[sfx: applause]" in message, message
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--sfx", f"boom={clap}", "--out", tmp_path / "v.mp4")
    assert rc == 2 and "no [sfx: NAME] mark" in one_error_line(err), err
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize("text", ["!" * 10_000, "...", "?! ... !!", "— * #"])
def test_punctuation_alone_is_refused_the_same_way(tmp_path, text):
    rc, out, err = generate(tmp_path, "--text", text, "--out", tmp_path / "v.mp4", timeout=120)
    message = one_error_line(err)  # 10,000 '!' were read out as "exclamation" for 172 s
    assert rc == 2 and "no speakable words" in message, message
    assert not (tmp_path / "v.mp4").exists()


def test_punctuation_alone_is_not_read_out_within_a_script():
    from podium.engines.script import parse_script, speakable

    script = parse_script("Hello there. !!!!!! Goodbye now.")
    assert [s for s in script.sentences if not speakable(s)] == ["!!!!!!"]  # the voice skips it


def test_escape_sequences_from_the_llm_stay_out_of_the_script_files(tmp_path):
    from podium.engines.guided_answer import parse_answer, to_script
    from podium.engines.script_files import save_script_files

    answer = ('{"title": "Tides\\u001b[2J\\u001b]0;owned\\u0007 explained", "stage": "a beach",'
              ' "segments": [{"narration": "The sea rises\\u001b[31m twice a day.",'
              ' "slide_title": "\\u009b31mWhy", "bullets": ["moon\\u001b[0m"]}]}')
    script = to_script(parse_answer(answer))
    json_path, md_path = save_script_files(script, tmp_path / "talk")
    for path in (json_path, md_path):
        text = path.read_text(encoding="utf-8")
        assert not any(ord(c) < 32 and c not in "\n\t" or 0x7f <= ord(c) < 0xa0 for c in text), repr(text)
        assert "[2J" not in text and "owned" not in text and "31m" not in text, text
    assert md_path.read_text(encoding="utf-8").startswith("# Tides explained\n")


def _device_or_fifo(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.mp4"
    if kind == "fifo":
        os.mkfifo(path)
    elif os.geteuid() == 0:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    else:
        pytest.skip("making a device node needs root")
    return path


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_force_never_replaces_a_device_or_a_fifo(tmp_path, kind):
    target = _device_or_fifo(tmp_path, kind)
    mode = target.lstat().st_mode
    rc, out, err = generate(tmp_path, "--text", "Hi there.", "--out", target, "--force")
    message = one_error_line(err)
    assert rc == 2 and "not a regular file" in message, message
    assert target.lstat().st_mode == mode  # still the node, not a file


def test_models_list_says_the_models_folder_is_a_file(tmp_path):
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("oops")
    rc, out, err = run_cli("models", "list", "--models-dir", not_a_folder, cwd=tmp_path, timeout=120)
    message = one_error_line(err)
    assert rc == 2 and "is a file, not a folder" in message and str(not_a_folder) in message, message


def test_a_full_stdout_does_not_fail_a_written_video(tmp_path):
    """stdout on a full disk: the video is whole and the run exits 0 with one warning (it exited
    1 with "No space left on device", the video written)."""
    import subprocess

    from conftest import CLI, cli_env, ffprobe

    target = tmp_path / "v.mp4"
    with open("/dev/full", "w") as full:
        done = subprocess.run([*CLI, "generate", "--text", "Hello there.", "--out", str(target), "--size", SIZE,
                               "--quiet"], cwd=tmp_path, env=cli_env(tmp_path / "scratch"), stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().startswith("warning: ") and "No space left" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert target.with_suffix(".srt").is_file()
    assert {s["codec_type"] for s in ffprobe(target, count_frames=False)["streams"]} == {"video", "audio"}
