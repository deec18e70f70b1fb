"""`podium comfy up` when an instance dies at start (no such GPU, a bad argument): it says so at
once, with the end of that instance's log, stops the others it started, and exits 1."""
from __future__ import annotations

import socket
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
