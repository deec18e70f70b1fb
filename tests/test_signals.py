"""Signals end a run cleanly: Ctrl-C anywhere stays an interrupt (exit 130), SIGTERM and SIGHUP
end it as Ctrl-C does (children stopped, temporary files removed; exit 143 / 129), and what a
run killed outright left behind is removed by the next run (only when its process is dead).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from podium import memory

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import cache_dir_for, run_cli, start_cli  # noqa: E402


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def leftovers(scratch: Path) -> list[str]:
    """What is left in a run's TMPDIR, except onnxruntime's own `.ses` file (not ours)."""
    return [n for n in listing(scratch) if n != ".ses"]


# ---- Ctrl-C inside the peak-memory sampler ----

def test_ctrl_c_inside_the_peak_rss_exit_stays_a_keyboard_interrupt(monkeypatch):
    """A real SIGINT delivered while the stage's __exit__ waits for its sampler thread: the
    stage ends with KeyboardInterrupt (the CLI's 130), never an AttributeError (exit 1)."""
    sampling, release = threading.Event(), threading.Event()
    real = memory._rss_bytes

    def slow_rss():
        if threading.current_thread().name == "podium-rss":
            sampling.set()
            release.wait(30)  # the sampler is busy: __exit__'s join has to wait for it
        return real()

    monkeypatch.setattr(memory, "_rss_bytes", slow_rss)
    monkeypatch.setattr(memory, "SAMPLE_INTERVAL_S", 0.01)
    main = threading.main_thread().ident

    def ctrl_c_while_joining():
        try:
            assert sampling.wait(30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the main thread waits in join()
                frame = sys._current_frames().get(main)
                names = set()
                while frame is not None:
                    names.add(frame.f_code.co_name)
                    frame = frame.f_back
                if "__exit__" in names and "join" in names:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.005)
        finally:
            release.set()

    manager = memory.ModelManager(budget_bytes=1 << 30)
    helper = threading.Thread(target=ctrl_c_while_joining)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        with manager.stage("voice"):
            assert sampling.wait(30)
        time.sleep(5)  # the signal had not come during __exit__: fail below, not here
    helper.join(30)
    report = manager.reports[-1]
    assert report.name == "voice" and report.peak_bytes >= 0
