"""`podium` as a careless or hostile user runs it: every mistake and fault ends in one line and a
documented exit code, and no file the user owns is replaced, cut or lost.

Runs the real CLI in a subprocess (draft preset: the real Piper voice and ffmpeg), with real
servers on loopback (tests/fake_comfy, a plain HTTP server, a real ComfyUI when COMFYUI_DIR is
set) and, where the kernel allows it, a real full file system (a small tmpfs).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import (CLI, COMFYUI_DIR, cache_dir_for, cli_env, ffprobe, listing, one_error_line, parse_srt,  # noqa: E402
                      requires_comfyui, run_cli, start_cli, stop_process, streams)
from test_downloads import FileServer  # noqa: E402

from podium import errors, files  # noqa: E402

SIZE = "160x90"
REPO = Path(__file__).resolve().parents[1]
MISSING_VOICE = "piper-en_US-lessac-medium"  # in models.yaml, never installed by the tests


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (hidden ones too)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def generate(tmp_path: Path, *args, scratch: str = "scratch") -> tuple[int, str, str]:
    return run_cli("generate", *args, "--size", SIZE, "--quiet", cwd=tmp_path, tmpdir=tmp_path / scratch)


def user_files(folder: Path) -> list[str]:
    """What is in the user's folder, less the run's TMPDIR and segment cache beside it."""
    return sorted(n for n in os.listdir(folder) if not n.startswith("scratch"))


def cache_entries(tmp_path: Path, scratch: str = "scratch") -> list[Path]:
    cache = cache_dir_for(tmp_path / scratch)
    return sorted(p for p in cache.iterdir() if not p.name.startswith(".")) if cache.is_dir() else []


# ---- item 13.10 / 14.14: one error root, documented exit codes ----

def test_help_tells_the_exit_codes_and_the_files_beside_the_video():
    for args in (["--help"], ["generate", "--help"]):
        rc, out, err = run_cli(*args)
        assert rc == 0, err
        text = " ".join(out.split())
        for code in ("0 done", "1 failed", "2 usage", "130 interrupted", "143 terminated"):
            assert code in text, (code, args)
        assert "NAME.srt" in text and "NAME.json" in text and "NAME.md" in text


def test_comfyui_type_names_map_back_to_the_error_classes():
    # How ComfyUI names a type: the module as it imported the pack, then the class.
    assert errors.error_class("/srv/ComfyUI/custom_nodes/podium.errors.ModelMissingError") is errors.ModelMissingError
    assert errors.error_class("podium.errors.PodiumError") is errors.PodiumError
    assert errors.error_class("ComfyUI-Podium.custom_nodes.podium.errors.UsageError") is errors.UsageError
    assert errors.error_class("builtins.RuntimeError") is None
    assert errors.error_class("evil.ModelMissingError") is None
    assert errors.error_class("podium.errors.re") is None  # a module attribute, not an error
    assert errors.ModelMissingError.exit_code == 2 and errors.PodiumError.exit_code == 1


def test_a_missing_model_inside_a_node_is_one_line_in_process(tmp_path):
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--voice", MISSING_VOICE,
                            "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2, err
    assert f"podium models pull {MISSING_VOICE}" in message and "Voice" not in message
    assert not (tmp_path / "v.mp4").exists()


def test_a_missing_model_inside_a_node_on_a_server_is_one_line(tmp_path):
    from fake_comfy import FakeComfy

    server = FakeComfy(tmp_path / "server", execute="podium").start()
    try:
        assert server.child_ready.wait(120)
        rc, out, err = generate(tmp_path, "--text", "Hello there.", "--voice", MISSING_VOICE,
                                "--server", server.url, "--out", tmp_path / "v.mp4")
    finally:
        server.stop()
    message = one_error_line(err)
    assert rc == 2, err
    assert f"podium models pull {MISSING_VOICE}" in message
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.comfyui
@requires_comfyui
def test_a_missing_model_inside_a_node_in_a_real_comfyui_is_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, str(Path(COMFYUI_DIR, "main.py")), "--cpu", "--listen", "127.0.0.1",
           "--port", str(port), "--base-directory", str(REPO), "--database-url", "sqlite:///:memory:"]
    for name in ("output", "temp", "user", "input"):
        (tmp_path / "comfy" / name).mkdir(parents=True)
        cmd += [f"--{name}-directory", str(tmp_path / "comfy" / name)]
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "comfy.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path / "comfy")
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "comfy.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "ComfyUI did not answer"
            try:
                if requests.get(url + "/system_stats", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        rc, out, err = generate(tmp_path, "--text", "Hello from ComfyUI.", "--voice", MISSING_VOICE,
                                "--server", url, "--out", tmp_path / "v.mp4")
        history = requests.get(url + "/history", timeout=10).json()
    finally:
        stop_process(proc)
    # It really came back as ComfyUI's execution_error, naming the class by its module path.
    types = [m[1]["exception_type"] for entry in history.values()
             for m in entry["status"]["messages"] if m[0] == "execution_error"]
    assert types and types[0].endswith("podium.errors.ModelMissingError"), types
    message = one_error_line(err)
    assert rc == 2 and f"podium models pull {MISSING_VOICE}" in message, err


# ---- item 14.1: outputs never overwrite each other or an input ----

@pytest.mark.parametrize("case", ["out-is-srt", "out-is-script", "srt-is-script", "guided-json",
                                  "guided-md"])
def test_no_output_lands_on_another_output_or_an_input(tmp_path, case):
    script = tmp_path / "t.md"
    script.write_text("# Mine\nHello there. This is my script.\n", encoding="utf-8")
    srt_script = tmp_path / "talk.srt"
    if case == "srt-is-script":
        srt_script.write_text("Hello there, read from a .srt file.\n", encoding="utf-8")
    args = {
        "out-is-srt": ["--text", "Hello there.", "--out", tmp_path / "talk.srt"],
        "out-is-script": ["--script", script, "--out", script, "--force"],
        "srt-is-script": ["--script", srt_script, "--out", tmp_path / "talk.mp4", "--force"],
        "guided-json": ["--mode", "guided", "--topic", "tea", "--out", tmp_path / "talk.json",
                        "--ollama-host", "http://127.0.0.1:9"],
        "guided-md": ["--mode", "guided", "--topic", "tea", "--out", tmp_path / "talk.md",
                      "--ollama-host", "http://127.0.0.1:9", "--force"],
    }[case]
    before = snapshot(tmp_path)
    rc, out, err = generate(tmp_path, *args)
    message = one_error_line(err)
    assert rc == 2, err
    assert "would" in message and ("same file" in message or "input" in message), message
    assert snapshot(tmp_path) == before  # byte-identical, nothing added
    assert cache_entries(tmp_path) == []  # refused before any work (no LLM call either)


# ---- item 14.2: publishing never replaces a file that appeared meanwhile ----

def test_publish_without_replace_keeps_what_appeared(tmp_path):
    target = tmp_path / "v.mp4"
    with files.writing(target, replace=False) as tmp:
        tmp.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(FileExistsError) as info:
        with files.writing(target, replace=False) as tmp:
            tmp.write_bytes(b"second")
    assert info.value.filename == str(target)
    assert target.read_bytes() == b"first" and sorted(os.listdir(tmp_path)) == ["v.mp4"]
    # Several at once: all or none (the video taken back when its subtitles' name is taken).
    (tmp_path / "w.srt").write_text("theirs")
    a, b = files.temp_path(tmp_path / "w.mp4"), files.temp_path(tmp_path / "w.srt")
    a.write_bytes(b"video")
    b.write_text("subs")
    with pytest.raises(FileExistsError):
        files.publish_all([(a, tmp_path / "w.mp4"), (b, tmp_path / "w.srt")], replace=False)
    assert not (tmp_path / "w.mp4").exists() and (tmp_path / "w.srt").read_text() == "theirs"
    assert files.temp_owner(a.name) == os.getpid() and files.temp_owner("v.mp4") is None


def test_a_file_made_during_the_render_is_not_overwritten(tmp_path):
    text = "\n\n".join(f"Paragraph {i} is here. It has two sentences." for i in range(4))
    target = tmp_path / "talk.mp4"
    proc = start_cli("generate", "--text", text, "--out", target, "--size", SIZE, "--quiet",
                     cwd=tmp_path, tmpdir=tmp_path / "scratch")
    try:
        deadline = time.monotonic() + 240
        while not cache_entries(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGSTOP)  # hold it while "someone else" writes the file
        try:
            assert not target.exists() and 0 < len(cache_entries(tmp_path)) < 4, \
                "the render was not caught in the middle"
            target.write_bytes(b"written by someone else meanwhile")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    message = one_error_line(err)
    assert proc.returncode == 2 and "appeared while rendering" in message and "--force" in message
    assert target.read_bytes() == b"written by someone else meanwhile"
    assert user_files(tmp_path) == ["talk.mp4"]  # no .srt, no .part left
    # --force replaces it, from the cache (every segment was kept).
    rc, out, err = generate(tmp_path, "--text", text, "--out", target, "--force")
    assert rc == 0, err
    assert "(4 segments, 4 from cache)" in out
    assert ffprobe(target, count_frames=False)["format"]["duration"] > 5


# ---- item 14.3: a damaged cache entry is dropped, said, and made again ----

@pytest.fixture(scope="module")
def whole_cache(tmp_path_factory) -> Path:
    """One run's folder (v.mp4 and its segment cache), made once; each test damages a copy."""
    folder = tmp_path_factory.mktemp("whole-cache")
    rc, out, err = generate(folder, "--text", "Hello there. The cache keeps this.", "--out", folder / "v.mp4")
    assert rc == 0, err
    assert len(cache_entries(folder)) == 1
    return folder


@pytest.mark.parametrize("damage", ["truncated-clip", "info-without-fps", "info-garbage", "srt-gone"])
def test_a_damaged_cache_entry_is_made_again(tmp_path, damage, whole_cache):
    target = tmp_path / "v.mp4"
    shutil.copytree(whole_cache, tmp_path, dirs_exist_ok=True)  # v.mp4 and scratch-cache/
    [entry] = cache_entries(tmp_path)
    if damage == "truncated-clip":
        [clip] = [p for p in entry.iterdir() if p.stem == "clip" and p.suffix in (".mov", ".mp4")]
        clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    elif damage == "info-without-fps":
        info = json.loads((entry / "info.json").read_text())
        del info["fps"]
        (entry / "info.json").write_text(json.dumps(info))
    elif damage == "info-garbage":
        (entry / "info.json").write_bytes(b"\x00{not json")
    else:
        (entry / "clip.srt").unlink()
    rc, out, err = generate(tmp_path, "--text", "Hello there. The cache keeps this.", "--out", target, "--force")
    assert rc == 0, err
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if line.startswith("warning: segment cache entry")]
    assert len(warnings) == 1 and "made again" in warnings[0], err
    assert "(1 segments, 0 from cache)" in out, out
    info = ffprobe(target)
    assert sorted(s["codec_type"] for s in info["streams"]) == ["audio", "video"]
    assert [c[2] for c in parse_srt(target.with_suffix(".srt"))] == ["Hello there.", "The cache keeps this."]
    # The entry made again is whole: a third run takes it without a word.
    rc, out, err = generate(tmp_path, "--text", "Hello there. The cache keeps this.", "--out", target, "--force")
    assert rc == 0 and "warning" not in err and "(1 segments, 1 from cache)" in out, err


# ---- item 14.5: a very long script asks first ----

def test_a_very_long_script_needs_yes(tmp_path):
    sentence = "This sentence is part of a very long narration indeed."  # 10 words
    script = tmp_path / "long.txt"
    script.write_text("\n\n".join([sentence] * 520), encoding="utf-8")  # 5,200 words, 520 segments
    before = snapshot(tmp_path)
    rc, out, err = generate(tmp_path, "--script", script, "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2 and "--yes" in message and "about 35 min" in message and "520 segments" in message
    assert snapshot(tmp_path) == before and cache_entries(tmp_path) == []
    # --yes lets it past the question (a cross-fade too long for a segment stops it next).
    rc, out, err = generate(tmp_path, "--script", script, "--out", tmp_path / "v.mp4", "--yes",
                            "--crossfade", "5")
    assert rc == 2 and "note: rendering about 35 min" in err and "--crossfade" in err.splitlines()[-1]
    assert cache_entries(tmp_path) == []


def test_a_long_llm_narration_is_not_cut():
    from podium.engines.guided_answer import parse_answer

    narration = " ".join(["Words go on and on."] * 30_000)  # 570,000 characters
    answer = json.dumps({"title": "T", "segments": [{"narration": narration}]})
    assert parse_answer(answer)["segments"][0]["narration"] == narration


# ---- item 14.9: faults of the disk, the config, the server: one line ----

def test_an_unwritable_cache_folder_is_refused_before_any_work(tmp_path):
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--out", tmp_path / "v.mp4",
                            "--cache-dir", f"/proc/podium-cache-{os.getpid()}")
    message = one_error_line(err)
    assert rc == 1 and "segment cache" in message and "--cache-dir" in message
    assert user_files(tmp_path) == []


@pytest.fixture
def tiny_fs(tmp_path):
    """Mount a small tmpfs (a disk that fills up for real); skipped where mount is not allowed."""
    made = []

    def mount(name: str, size: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        made.append(folder)
        return folder

    yield mount
    for folder in made:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_cache_folder_is_one_line(tmp_path, tiny_fs):
    cache = tiny_fs("cache", 8192)  # two pages: the probe fits, a clip does not
    rc, out, err = generate(tmp_path, "--text", "Hello there. " * 6, "--out", tmp_path / "v.mp4",
                            "--cache-dir", cache)
    message = one_error_line(err)
    assert rc == 1 and "segment cache" in message and "No space left" in message, err
    assert not (tmp_path / "v.mp4").exists() and listing(cache) == {}


def test_a_full_disk_at_the_subtitles_changes_nothing(tmp_path, tiny_fs):
    text = "Hello there. The disk is nearly full."
    rc, out, err = generate(tmp_path, "--text", text, "--out", tmp_path / "first.mp4")
    assert rc == 0, err
    size = (tmp_path / "first.mp4").stat().st_size  # the same cached clips stitch to the same bytes
    folder = tiny_fs("out", -(-size // 4096) * 4096)  # room for the video, not one page more
    (folder / "keep.txt").write_bytes(b"")  # the user's (empty) file
    rc, out, err = generate(tmp_path, "--text", text, "--out", folder / "v.mp4")
    message = one_error_line(err)
    assert rc == 1 and "No space left" in message and "nothing there was changed" in message, err
    assert snapshot(folder) == {"keep.txt": b""}


@pytest.mark.parametrize("servers", ["5", '"http://x"', "[5]", "[{port: 1}]"])
def test_a_config_of_the_wrong_shape_is_one_line(tmp_path, servers):
    config = tmp_path / "servers.yaml"
    config.write_text(f"servers: {servers}\n")
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--config", config, "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2 and str(config) in message and "servers" in message.lower()


HTML = b"<!doctype html><html><body>" + b"<p>A web page, not ComfyUI.</p>" * 200 + b"</body></html>"


class Impostor:
    """A loopback HTTP server that is no ComfyUI: an HTML page for everything, or (stats_ok)
    a believable /system_stats and HTML for the rest."""

    def __init__(self, stats_ok: bool, status: int = 200):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                if owner.stats_ok and self.path.startswith("/system_stats"):
                    body, kind, code = json.dumps({"system": {"os": "posix"}, "devices": []}).encode(), \
                        "application/json", 200
                else:
                    body, kind, code = HTML, "text/html", owner.status
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

        self.stats_ok, self.status = stats_ok, status
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status", [200, 404])
def test_a_web_server_that_is_not_comfyui_is_named_so(tmp_path, status):
    server = Impostor(stats_ok=False, status=status)
    try:
        rc, out, err = generate(tmp_path, "--text", "Hello there.", "--server", server.url,
                                "--out", tmp_path / "v.mp4")
    finally:
        server.close()
    assert rc == 2 and "Traceback" not in err and "<" not in err, err
    warning, error = err.strip().splitlines()
    assert "is not a ComfyUI server" in warning and f"HTTP {status}" in warning, warning
    assert error.startswith("error: no ComfyUI server")


def test_a_server_that_answers_like_no_comfyui_is_one_line(tmp_path):
    server = Impostor(stats_ok=True)
    try:
        rc, out, err = generate(tmp_path, "--text", "Hello there.", "--server", server.url,
                                "--out", tmp_path / "v.mp4")
    finally:
        server.close()
    message = one_error_line(err)
    assert rc == 1 and "is it a ComfyUI server" in message and "<" not in message, err
    assert user_files(tmp_path) == []


# ---- item 14.11: --voice-ref with a preset that does not use it ----

def test_a_missing_voice_ref_is_an_error_even_with_piper(tmp_path):
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--preset", "draft",
                            "--voice-ref", tmp_path / "me.wav", "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2 and "not found" in message and str(tmp_path / "me.wav") in message
    assert cache_entries(tmp_path) == []


def test_an_unused_voice_ref_is_one_warning_naming_the_preset(tmp_path):
    ref = tmp_path / "me.wav"
    ref.write_bytes(b"RIFF not really audio, and never read")
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--preset", "draft",
                            "--voice-ref", ref, "--out", tmp_path / "v.mp4")
    assert rc == 0, err
    [warning] = [line for line in err.splitlines() if "--voice-ref" in line]
    assert warning.startswith("warning: --voice-ref is not used: the draft preset speaks with Piper")
    assert "balanced" in warning and "quality" in warning
    assert ref.read_bytes() == b"RIFF not really audio, and never read"


# ---- item 14.12: messages that say what is wrong ----

@pytest.mark.parametrize("args, says", [
    (["--size", "99999x99999"], "from 64 to 4096"),
    (["--size", "32x32"], "from 64 to 4096"),
    (["--size", "321x180"], "even"),
    (["--crossfade", "-1"], "--crossfade must be from 0 to 5 seconds"),
    (["--fps", "29.97"], "whole number"),
    (["--mode", "guided", "--topic", "x", "--llm-timeout", "0"], "--llm-timeout must be more than 0"),
    (["--mode", "guided", "--topic", "x", "--llm-timeout", "-3"], "--llm-timeout must be more than 0"),
    (["--mode", "guided", "--topic", "x", "--tone", "warm\x1b[2J"], "--tone must not contain control characters"),
    (["--presenter-prompt", "a\x07b"], "--presenter-prompt must not contain control characters (U+0007"),
    (["--crossfade", "nan"], "--crossfade must be a number"),
])
def test_option_values_are_refused_with_the_reason(tmp_path, args, says):
    source = [] if "--topic" in args else ["--text", "Hi."]
    rc, out, err = run_cli("generate", *source, "--out", tmp_path / "v.mp4", *args, cwd=tmp_path)
    assert rc == 2 and "Traceback" not in err
    assert says in err.strip().splitlines()[-1], err
    assert os.listdir(tmp_path) == []


# ---- issue 20.1: one request, also as a file (what `podium serve` hands its children) ----

def test_a_request_file_renders_and_options_given_beside_it_win(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"text": "Hello there.", "out": str(tmp_path / "v.mp4"), "fps": 12,
                               "subtitles": "none", "preset": "draft"}), encoding="utf-8")
    rc, out, err = generate(tmp_path, "--request", job, "--fps", "10")
    assert rc == 0, err
    [video] = streams(ffprobe(tmp_path / "v.mp4"), "video")
    assert video["r_frame_rate"] == "10/1" and (video["width"], video["height"]) == (160, 90)
    assert not (tmp_path / "v.srt").exists()  # subtitles none, from the file


@pytest.mark.parametrize("content, says", [
    ('{"text": "Hi.", "out": "v.mp4", "fps": 500}', "--fps must be from 1 to 120, got 500 (in "),
    ('{"text": "Hi.", "out": "v.mp4", "colour": "red"}', "--colour"),
    ('{"text": "Hi.", "script": "talk.md", "out": "v.mp4"}', "text or script, not both"),
    ('["not", "an", "object"]', "must hold a JSON object"),
    ("{nope", "cannot read the request file"),
])
def test_a_bad_request_file_is_one_line(tmp_path, content, says):
    job = tmp_path / "job.json"
    job.write_text(content, encoding="utf-8")
    rc, out, err = run_cli("generate", "--request", job, cwd=tmp_path)
    message = one_error_line(err)
    assert rc == 2 and says in message, message
    assert os.listdir(tmp_path) == ["job.json"]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims to be width x height (a decompression bomb needs no more to be read)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" + b"\x00" * width
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [12_000, 40_000])  # above Pillow's warning limit; above its error limit
def test_a_decompression_bomb_image_is_refused_before_any_work(tmp_path, side):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(side, side))
    rc, out, err = generate(tmp_path, "--text", "Hello there.", "--image", bomb, "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2 and "megapixels" in message and str(bomb) in message
    assert cache_entries(tmp_path) == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_crossfade_too_long_for_a_segment(tmp_path, when):
    # "before": sure from the text alone; "after": only the real length shows it, and the
    # rendered segments stay cached for the rerun.
    text = "Hi.\n\nThis is the second part." if when == "before" else \
        "Hello there, my friend.\n\nThis second part of the talk is a good deal longer than the first."
    fade = "2" if when == "before" else "1.9"
    rc, out, err = generate(tmp_path, "--text", text, "--crossfade", fade, "--out", tmp_path / "v.mp4")
    message = one_error_line(err)
    assert rc == 2 and "--crossfade" in message and "too long" in message
    assert user_files(tmp_path) == []
    assert len(cache_entries(tmp_path)) == (0 if when == "before" else 2)
    if when == "after":
        assert "cached" in message


# ---- item 14.13: models pull checks what is there, and stays in the models folder ----

def _models_env(tmp_path: Path, yaml_text: str) -> dict:
    registry = tmp_path / "models.yaml"
    registry.write_text(yaml_text)
    env = cli_env(tmp_path / "scratch")
    env.update(PODIUM_MODELS_YAML=str(registry), PODIUM_MODELS_DIR=str(tmp_path / "models"))
    return env


def _models(env: dict, *args) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "models", *args], env=env, capture_output=True, text=True, timeout=120)


ENTRY = """models:
  - id: tiny
    kind: piper-voice
    folder: {folder}
    files:
      - {{name: "{name}", url: "{url}", sha256: {sha}, size: {size}}}
    license: MIT
    commercial_use: true
"""


def test_pull_replaces_a_same_size_corrupted_file(tmp_path):
    data = os.urandom(50_000)
    server = FileServer()
    server.files["v.onnx"] = data
    try:
        env = _models_env(tmp_path, ENTRY.format(folder="tts/piper", name="v.onnx", url=server.url("v.onnx"),
                                                 sha=hashlib.sha256(data).hexdigest(), size=len(data)))
        installed = tmp_path / "models" / "tts" / "piper" / "v.onnx"
        installed.parent.mkdir(parents=True)
        installed.write_bytes(bytes(b ^ 0xFF for b in data[:100]) + data[100:])  # same size, wrong bytes
        done = _models(env, "pull", "tiny")
        assert done.returncode == 0, done.stderr
        assert "does not match its sha256" in done.stdout and "downloaded" in done.stdout
        assert installed.read_bytes() == data
        again = _models(env, "pull", "tiny")
        assert again.returncode == 0 and "already at" in again.stdout
    finally:
        server.close()


@pytest.mark.parametrize("folder, name", [("../outside", "v.onnx"), ("tts", "../../escape.onnx"),
                                          ("/tmp", "v.onnx"), ("tts", "/etc/podium-test.onnx")])
def test_a_models_yaml_path_outside_the_models_folder_is_refused(tmp_path, folder, name):
    server = FileServer()
    server.files["v.onnx"] = b"x" * 100
    try:
        env = _models_env(tmp_path, ENTRY.format(folder=folder, name=name, url=server.url("v.onnx"),
                                                 sha="null", size=100))
        before = snapshot(tmp_path)
        done = _models(env, "pull", "tiny")
    finally:
        server.close()
    message = one_error_line(done.stderr)
    assert done.returncode == 1 and "inside the models folder" in message, done.stderr
    assert not server.requests and snapshot(tmp_path) == before
    assert not Path("/etc/podium-test.onnx").exists()


def test_pull_from_a_dead_server_does_not_claim_a_part_file(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v.onnx"  # closed when the block ends
    env = _models_env(tmp_path, ENTRY.format(folder="tts/piper", name="v.onnx", url=dead, sha="null", size=100))
    done = _models(env, "pull", "tiny")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "nothing was downloaded" in done.stderr and ".part" not in done.stderr, done.stderr
    assert not (tmp_path / "models" / "tts" / "piper").exists() or \
        listing(tmp_path / "models" / "tts" / "piper") == {}
