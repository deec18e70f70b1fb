"""`podium comfy up` when an instance dies at start (no such GPU, a bad argument): it says so at
once, with the end of that instance's log, stops the others it started, and exits 1."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import COMFYUI_DIR, HAVE_COMFYUI, REPO, run_cli  # noqa: E402

STATE = REPO / "user" / "podium-servers.json"

# A stand-in ComfyUI: records its PID, then GPU 1 dies as a missing GPU does; the others start
# and never answer HTTP (so only noticing the dead one can end the wait early).
FAKE_MAIN = textwrap.dedent("""\
    import os, sys, time
    device = sys.argv[sys.argv.index("--cuda-device") + 1] if "--cuda-device" in sys.argv else "cpu"
    with open(os.path.join(os.path.dirname(__file__), "pid-" + device), "w") as f:
        f.write(str(os.getpid()))
    if device == "1":
        print("Traceback (most recent call last):", flush=True)
        print("RuntimeError: CUDA error: invalid device ordinal", flush=True)
        sys.exit(1)
    time.sleep(600)
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _state() -> bytes | None:
    return STATE.read_bytes() if STATE.exists() else None


def test_an_instance_that_exits_at_start_fails_at_once_with_its_log(tmp_path):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(FAKE_MAIN)
    before = _state()
    t0 = time.monotonic()
    # timeout: the old code waited its whole 300 s before saying "did not answer"
    rc, out, err = run_cli("comfy", "up", "--gpus", "0,1", "--comfyui-dir", comfy,
                           "--base-port", free_port(), timeout=120)
    took = time.monotonic() - t0
    assert rc == 1, err
    assert "gpu1 exited at start (exit code 1)" in err, err
    assert "RuntimeError: CUDA error: invalid device ordinal" in err, err  # the log's tail
    assert [line for line in err.splitlines() if line.startswith("error:")] == [err.splitlines()[1]], err  # one, ours
    assert "did not answer" not in err and "use them" not in out
    # the instance that did start was stopped too: nothing is left running, nothing recorded
    survivor = int((comfy / "pid-0").read_text())
    assert not psutil.pid_exists(survivor) or psutil.Process(survivor).status() == psutil.STATUS_ZOMBIE
    assert _state() == before
    print(f"comfy up with a dying child ended after {took:.1f} s")


@pytest.mark.comfyui
@pytest.mark.skipif(not HAVE_COMFYUI, reason="set COMFYUI_DIR to a ComfyUI source tree")
def test_a_real_comfyui_with_a_bad_argument_fails_at_once(tmp_path, monkeypatch):
    before = _state()
    rc, out, err = run_cli("comfy", "up", "--gpus", "0", "--comfyui-dir", COMFYUI_DIR,
                           "--base-port", free_port(), timeout=240)
    # on a machine without that GPU (or without CUDA) ComfyUI exits: its words are shown
    if rc == 0:
        run_cli("comfy", "down")
        pytest.skip("this machine has GPU 0: ComfyUI started")
    assert rc == 1, err
    assert "exited at start" in err and "the end of" in err, err
    assert _state() == before


# ---- issue 18.12: `down` signals only what `up` started; a second `up` never orphans the first ----

ANSWERING_MAIN = textwrap.dedent("""\
    import http.server, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    http.server.HTTPServer(("127.0.0.1", port), Answer).serve_forever()
""")


@pytest.fixture
def own_state(tmp_path, monkeypatch):
    """comfy_up's record and folders in tmp_path, not the repository's."""
    from orchestrator.servers import comfy_up

    monkeypatch.setattr(comfy_up, "REPO", tmp_path)
    monkeypatch.setattr(comfy_up, "STATE", tmp_path / "user" / "podium-servers.json")
    return comfy_up


def _sleeper() -> subprocess.Popen:
    """An unrelated program in its own session (as a ComfyUI started by `up` is)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)


def _ended(process: subprocess.Popen, timeout: float = 30) -> bool:
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_down_leaves_a_process_that_is_not_the_one_up_started(own_state):
    comfy_up = own_state
    ours, stranger, old = _sleeper(), _sleeper(), _sleeper()
    try:
        reused = {**comfy_up._identity(stranger.pid), "started_at": comfy_up._identity(stranger.pid)["started_at"] - 3600}
        servers = [{"url": "http://127.0.0.1:1", "pid": ours.pid, **comfy_up._identity(ours.pid)},
                   {"url": "http://127.0.0.1:2", "pid": stranger.pid, **reused},  # the PID, a later process
                   {"url": "http://127.0.0.1:3", "pid": old.pid}]  # a record with no identity
        comfy_up.STATE.parent.mkdir(parents=True)
        comfy_up.STATE.write_text(json.dumps({"servers": servers}))
        stopped, left = comfy_up.down()
        assert stopped == 1 and _ended(ours)
        assert stranger.poll() is None and old.poll() is None  # never signalled
        assert [line.split(": not stopped")[0] for line in left] == ["http://127.0.0.1:2", "http://127.0.0.1:3"]
        assert not comfy_up.STATE.exists()
    finally:
        for process in (ours, stranger, old):
            process.kill()
            process.wait()


def test_a_second_up_is_refused_while_the_first_runs(own_state, tmp_path):
    from podium.errors import UsageError

    comfy_up = own_state
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text(ANSWERING_MAIN)
    first = comfy_up.up(comfy, [], free_port(), wait_s=60)
    try:
        record = comfy_up.STATE.read_bytes()
        assert first[0]["cmdline"][1] == str(comfy / "main.py") and first[0]["started_at"] > 0
        with pytest.raises(UsageError, match="still runs.*comfy down"):
            comfy_up.up(comfy, [], free_port(), wait_s=60)
        assert comfy_up.STATE.read_bytes() == record  # the first ones' record is kept
        assert psutil.pid_exists(first[0]["pid"])
        stopped, left = comfy_up.down()
        assert (stopped, left) == (1, [])
        assert psutil.Process(first[0]["pid"]).wait(30) == -signal.SIGTERM  # (our child: reaped here)
    finally:
        for server in first:
            try:
                os.killpg(server["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
