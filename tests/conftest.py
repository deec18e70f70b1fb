"""Shared helpers for the end-to-end tests: the CLI in a subprocess, ffprobe/ffmpeg readers,
SRT parsing and a synthetic portrait (drawn here, nothing downloaded)."""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests
import srt
import websocket

REPO = Path(__file__).resolve().parents[1]
# What the console script `podium = "orchestrator.cli.main:main"` runs, in this interpreter.
CLI = [sys.executable, "-c", "import sys; from orchestrator.cli.main import main; sys.exit(main())"]
FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
FFPROBE = shutil.which("ffprobe") or "/usr/bin/ffprobe"


# Segment cache of runs that name no folder of their own: never the user's ~/.cache.
_SESSION_CACHE = Path(tempfile.mkdtemp(prefix="podium-test-cache-"))
atexit.register(shutil.rmtree, _SESSION_CACHE, ignore_errors=True)


COMFYUI_DIR = os.environ.get("COMFYUI_DIR", "")
HAVE_COMFYUI = bool(COMFYUI_DIR and Path(COMFYUI_DIR, "main.py").is_file())
requires_comfyui = pytest.mark.skipif(not HAVE_COMFYUI,
                                      reason="set COMFYUI_DIR to a ComfyUI source tree to run this test")
live_comfyui = [pytest.mark.comfyui, requires_comfyui]  # a module's pytestmark


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP's waiting makes each
    step take seconds instead of a tenth of one (`pytestmark = usefixtures(...)` in a module)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cache_dir_for(tmpdir: Path | None) -> Path:
    """The segment cache a run with this TMPDIR uses: `<tmpdir>-cache`, fresh per run."""
    return tmpdir.with_name(tmpdir.name + "-cache") if tmpdir is not None else _SESSION_CACHE


def cli_env(tmpdir: Path | None = None) -> dict:
    """The environment for a CLI run; TMPDIR pointed at `tmpdir` so leftovers can be seen, and
    the segment cache beside it (so no run reuses another's segments)."""
    env = dict(os.environ)
    env.pop("PODIUM_FFMPEG", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["PODIUM_CACHE_DIR"] = str(cache_dir_for(tmpdir))
    if tmpdir is not None:
        tmpdir.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(tmpdir)
    return env


def run_cli(*args: str, cwd: Path | None = None, tmpdir: Path | None = None,
            timeout: float = 300) -> tuple[int, str, str]:
    """`podium ARGS...` as a user runs it; (returncode, stdout, stderr)."""
    done = subprocess.run([*CLI, *map(str, args)], cwd=cwd or REPO, env=cli_env(tmpdir),
                          capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


def start_cli(*args: str, cwd: Path | None = None, tmpdir: Path | None = None) -> subprocess.Popen:
    """The CLI started in its own session (so a signal reaches it alone)."""
    return subprocess.Popen([*CLI, *map(str, args)], cwd=cwd or REPO, env=cli_env(tmpdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def ffprobe(path: str | Path, count_frames: bool = True) -> dict:
    """{"streams": [{codec_type, codec_name, duration, nb_frames, ...}], "format": {...}};
    durations as floats, nb_frames counted by decoding (`-count_frames`) when asked."""
    command = [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json"]
    if count_frames:
        command.append("-count_frames")
    done = subprocess.run([*command, str(path)], capture_output=True, text=True, check=True)
    info = json.loads(done.stdout)
    for stream in info.get("streams", []):
        stream["duration"] = float(stream.get("duration", "nan"))
        counted = stream.get("nb_read_frames") if count_frames else None
        stream["nb_frames"] = int(counted if counted not in (None, "N/A") else stream.get("nb_frames", -1))
    info["format"]["duration"] = float(info["format"].get("duration", "nan"))
    return info


def streams(info: dict, codec_type: str) -> list[dict]:
    return [s for s in info["streams"] if s["codec_type"] == codec_type]


def decode_audio(path: str | Path, rate: int = 16000) -> np.ndarray:
    """The file's audio as mono float32 in [-1, 1] at `rate` (decoded by ffmpeg)."""
    done = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                           "-ar", str(rate), "-"], capture_output=True, check=True)
    return np.frombuffer(done.stdout, "<i2").astype(np.float32) / 32768.0


def window_rms(samples: np.ndarray, rate: int = 16000, window_s: float = 0.02) -> np.ndarray:
    """RMS of consecutive windows (20 ms by default); window i covers [i*w, (i+1)*w)."""
    hop = int(rate * window_s)
    usable = len(samples) // hop * hop
    return np.sqrt(np.mean(samples[:usable].reshape(-1, hop) ** 2, axis=1))


def frame_at(path: str | Path, t: float, width: int, height: int) -> np.ndarray:
    """The decoded RGB frame shown at time t (accurate seek), shape (height, width, 3)."""
    done = subprocess.run([FFMPEG, "-v", "error", "-ss", f"{t:.3f}", "-i", str(path),
                           "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                          capture_output=True, check=True)
    return np.frombuffer(done.stdout, np.uint8).reshape(height, width, 3)


def parse_srt(path: str | Path) -> list[tuple[float, float, str]]:
    """[(start, end, text)] with the cue's lines joined by a space, read by the `srt` library
    (strictly: anything it cannot parse fails); the numbering is checked to run 1, 2, 3, ..."""
    cues = list(srt.parse(Path(path).read_text(encoding="utf-8"), ignore_errors=False))
    for number, cue in enumerate(cues, start=1):
        assert cue.index == number, f"cue {number} is numbered {cue.index!r}"
    return [(c.start.total_seconds(), c.end.total_seconds(),
             " ".join(line.strip() for line in c.content.split("\n"))) for c in cues]


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `folder`, hidden ones included: {relative path: (size, mtime_ns)}."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            try:
                st = path.lstat()
            except FileNotFoundError:  # removed while we looked (a run's temp folder): not there
                continue
            found[str(path.relative_to(folder))] = (st.st_size if name in files else -1, st.st_mtime_ns)
    return found


def draw_portrait(path: Path, width: int = 240, height: int = 320) -> Path:
    """A face-like shape (hair, eyes, mouth, neck, shoulders) over a colour gradient. No colour
    in it is near white, so burned-in subtitles can be told apart from the picture."""
    from PIL import Image, ImageDraw

    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = 40 + 120 * y + 0 * x
    pixels[..., 1] = 60 + 80 * x + 0 * y
    pixels[..., 2] = 140 - 60 * y + 0 * x
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    s = width / 240
    draw.ellipse([20 * s, 230 * s, 220 * s, 400 * s], fill=(50, 70, 120))      # shoulders
    draw.rectangle([100 * s, 180 * s, 140 * s, 240 * s], fill=(200, 150, 120))  # neck
    draw.ellipse([70 * s, 70 * s, 170 * s, 200 * s], fill=(215, 165, 135))     # face
    draw.ellipse([65 * s, 55 * s, 175 * s, 120 * s], fill=(70, 45, 30))        # hair
    draw.ellipse([95 * s, 115 * s, 110 * s, 128 * s], fill=(40, 30, 30))       # eyes
    draw.ellipse([130 * s, 115 * s, 145 * s, 128 * s], fill=(40, 30, 30))
    draw.arc([100 * s, 150 * s, 140 * s, 175 * s], 20, 160, fill=(150, 60, 60), width=3)
    image.save(path)
    return path


@pytest.fixture
def portrait_png(tmp_path: Path) -> Path:
    return draw_portrait(tmp_path / "portrait.png")


def comparable_body(body: dict) -> dict:
    """A /prompt error body made comparable: ComfyUI lists a node's errors in set order (it
    varies with the hash seed), and tracebacks name local paths."""
    body = json.loads(json.dumps(body))
    for entry in body["node_errors"].values():
        entry["errors"].sort(key=lambda e: e["details"])
        for e in entry["errors"]:
            e["extra_info"].pop("traceback", None)
    return body


def stop_process(proc, grace_s: float = 15) -> None:
    """Terminate a child process, kill it if it does not stop within `grace_s`."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until_up(proc, url: str, log_path: Path, what: str, limit_s: float) -> None:
    """Until GET url answers; the test fails with the log's tail if the process exits first or
    nothing answers within limit_s."""
    start = time.monotonic()
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        if time.monotonic() - start > limit_s:
            pytest.fail(f"{what} did not answer in {limit_s:g} s:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)


@contextlib.contextmanager
def comfyui_server(args: list[str], cwd: Path, log_path: Path, env: dict | None = None):
    """A ComfyUI started as `python ARGS --cpu --listen 127.0.0.1 --port P` on a free port,
    waited for (its log shown if it exits or stays silent for 180 s), stopped at the end;
    yields {"url", "port", "log", "proc"}."""
    port = free_port()
    cmd = [sys.executable, *args, "--cpu", "--listen", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        wait_until_up(proc, url + "/system_stats", log_path, "ComfyUI", 180)
        yield {"url": url, "port": port, "log": log_path, "proc": proc}
    finally:
        stop_process(proc)


def run_prompt(comfy: dict, graph: dict, timeout: float = 300) -> tuple[dict, list[dict]]:
    """POST the graph with our client_id to a live ComfyUI, follow its websocket messages to the
    end; returns (its /history entry, the JSON messages received)."""
    client_id = uuid.uuid4().hex
    ws = websocket.create_connection(f"ws://127.0.0.1:{comfy['port']}/ws?clientId={client_id}",
                                     timeout=timeout)
    try:
        answer = requests.post(comfy["url"] + "/prompt", json={"prompt": graph, "client_id": client_id})
        assert answer.status_code == 200, answer.text
        prompt_id, messages = answer.json()["prompt_id"], []
        while not any(m["type"] in ("execution_success", "execution_error", "execution_interrupted")
                      and m["data"].get("prompt_id") == prompt_id for m in messages):
            frame = ws.recv()
            if isinstance(frame, str):
                messages.append(json.loads(frame))
    finally:
        ws.close()
    # ComfyUI says execution_success before its queue files the prompt under /history: wait for it
    deadline = time.monotonic() + 60
    while prompt_id not in (history := requests.get(f"{comfy['url']}/history/{prompt_id}").json()):
        assert time.monotonic() < deadline, f"prompt {prompt_id} ended but never reached /history"
        time.sleep(0.1)
    return history[prompt_id], messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def podium_server(data_dir: Path, *args: str, host: str = "127.0.0.1", token: str | None = None,
                  tmpdir: Path | None = None, port: int | None = None):
    """`podium serve --data-dir DATA ARGS` as a process on a free port (its jobs' segment cache is
    DATA/cache), waited for until /openapi.json answers (its log shown if it exits or stays
    silent for 60 s), stopped at the end; yields {"url", "port", "proc", "log", "headers"}
    (headers: the Bearer token's, when one is given)."""
    port = port or free_port()
    command = ["serve", "--host", host, "--port", str(port), "--data-dir", str(data_dir), *args]
    if token:
        command += ["--token", token]
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.with_name(data_dir.name + f"-serve-{port}.log")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*CLI, *command], cwd=REPO, env=cli_env(tmpdir), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_up(proc, url + "/openapi.json", log_path, "podium serve", 60)
        yield {"url": url, "port": port, "proc": proc, "log": log_path, "headers": headers}
    finally:
        stop_process(proc)


def wait_for_job(server: dict, job_id: str, until, timeout: float = 180, every: float = 0.2) -> list[dict]:
    """GET the job every `every` s until `until(job)` holds; every state seen (the last one
    satisfies it). Fails with the last state after `timeout` seconds."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        job = requests.get(f"{server['url']}/api/jobs/{job_id}", headers=server["headers"], timeout=10).json()
        seen.append(job)
        if until(job):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job.get('state')} after {timeout} s: {job}\n"
                        f"{server['log'].read_text()[-2000:]}")
        time.sleep(every)


def one_error_line(err: str) -> str:
    """The one `error: ...` line a failed CLI run printed (and that it printed only that)."""
    assert "Traceback" not in err, err
    message = err.strip()
    assert message and "\n" not in message, f"expected one line on stderr, got:\n{err}"
    assert message.startswith("error: "), message
    return message


# In a page: play the <video id="player"> muted and wait until its clock passes 0.5 s (or 20 s pass);
# what it reports then.
PLAY_VIDEO = """async () => {
    const v = document.getElementById('player');
    v.muted = true;
    await v.play();
    const start = performance.now();
    while (v.currentTime < 0.5 && performance.now() - start < 20000) {
        await new Promise(r => setTimeout(r, 100));
    }
    return {readyState: v.readyState, duration: v.duration, currentTime: v.currentTime,
            width: v.videoWidth, height: v.videoHeight, error: v.error && v.error.code};
}"""
