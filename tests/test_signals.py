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

from podium import files, profiling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import cache_dir_for, run_cli, start_cli  # noqa: E402


def listing(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:  # not there (yet, or any more), or not a folder
        return []


def leftovers(scratch: Path) -> list[str]:
    """What is left in a run's TMPDIR, except onnxruntime's own `.ses` file (not ours)."""
    return [n for n in listing(scratch) if n != ".ses"]


# ---- Ctrl-C inside the peak-memory sampler ----

def test_ctrl_c_inside_the_peak_rss_exit_stays_a_keyboard_interrupt(monkeypatch):
    """A real SIGINT delivered while the stage's __exit__ waits for its sampler thread: the
    stage ends with KeyboardInterrupt (the CLI's 130), never an AttributeError (exit 1)."""
    sampling, release = threading.Event(), threading.Event()
    real = profiling._rss_bytes

    def slow_rss():
        if threading.current_thread().name == "podium-rss":
            sampling.set()
            release.wait(30)  # the sampler is busy: __exit__'s join has to wait for it
        return real()

    monkeypatch.setattr(profiling, "_rss_bytes", slow_rss)
    monkeypatch.setattr(profiling, "SAMPLE_INTERVAL_S", 0.01)
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

    helper = threading.Thread(target=ctrl_c_while_joining)
    helper.start()
    with pytest.raises(KeyboardInterrupt):
        with profiling.stage("voice"):
            assert sampling.wait(30)
        time.sleep(5)  # the signal had not come during __exit__: fail below, not here
    helper.join(30)
    report = profiling.reports[-1]
    assert report.name == "voice" and report.peak_bytes >= 0


# ---- SIGTERM / SIGHUP through the CLI ----

def _wait_for(process, folders: list[Path], match, limit: float) -> str | None:
    """Poll until an entry whose name satisfies `match` appears under one of `folders`."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        for folder in folders:
            for name in listing(folder):
                if match(name):
                    return name
        time.sleep(0.01)
    return None


def _wait_for_part_under(process, folder: Path, limit: float) -> str | None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        for _root, _dirs, names in os.walk(folder):
            for name in names:
                if ".part" in name:
                    return name
        time.sleep(0.01)
    return None


def _sentences(n: int, tag: str) -> str:
    return " ".join(f"This is {tag} sentence number {i} of a longer narration." for i in range(n))


# encode: while a segment's ffmpeg writes its .part in the run's temp folder; stitch: while the
# stitching ffmpeg writes the hidden .talk.PID.part.mp4 beside the user's files (a cross-fade
# re-encodes, so it takes a while).
@pytest.mark.parametrize("signame,stage", [("SIGTERM", "encode"), ("SIGTERM", "stitch"),
                                           ("SIGHUP", "encode")])
def test_sigterm_and_sighup_end_the_run_as_ctrl_c_does(tmp_path, signame, stage):
    signum = getattr(signal, signame)
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "talk.mp4"
    target.write_bytes(b"the video from yesterday")
    (folder / "talk.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nyesterday\n")
    before = listing(folder)
    scratch = tmp_path / "scratch"
    if stage == "encode":
        args = ["--text", _sentences(5, signame)]
    else:
        script = tmp_path / "talk.txt"
        script.write_text(_sentences(6, "first") + "\n\n" + _sentences(6, "second") + "\n")
        args = ["--script", script, "--crossfade", "0.5"]
    process = start_cli("generate", *args, "--out", target, "--size", "960x540", "--force",
                        "--quiet", cwd=tmp_path, tmpdir=scratch)
    try:
        if stage == "encode":  # the segment's .part, somewhere in the run's temp folder
            seen = _wait_for_part_under(process, scratch, 300)
        else:
            seen = _wait_for(process, [folder], lambda n: ".part" in n, 300)
        assert seen is not None and process.poll() is None, \
            f"nothing to stop seen: {process.communicate(timeout=60)}"
        children = psutil.Process(process.pid).children(recursive=True)
        names = [c.name() for c in children]
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == {"SIGTERM": 143, "SIGHUP": 129}[signame], err
    assert signame in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0, err
    assert "wrote" not in out
    assert "ffmpeg" in names, names  # it was stopped while ffmpeg ran
    for child in children:  # the orphan check: no child outlives the run
        try:
            child.wait(timeout=10)
        except psutil.NoSuchProcess:
            pass
        assert not child.is_running(), child
    assert listing(folder) == before  # the old files untouched, no .part beside them
    assert target.read_bytes() == b"the video from yesterday"
    assert leftovers(scratch) == []  # none of our folders left in the temp folder
    cache = cache_dir_for(scratch)  # finished segments may stay (a rerun resumes); no half ones
    assert [n for n in listing(cache) if n.startswith(".")] == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    return child.pid


def test_next_run_removes_what_a_killed_run_left_and_keeps_the_rest(tmp_path):
    """Only names podium.files made (PID + check) whose process is dead go: never a user's
    own `podium-...` files and folders beside the video or in the temp folder (issue 18.1)."""
    dead, live = _dead_pid(), os.getpid()  # this test's own process is alive
    scratch, folder = tmp_path / "scratch", tmp_path / "out"
    scratch.mkdir()
    folder.mkdir()
    stale = [scratch / (files.temp_prefix("segment", pid=dead) + "k2j4"),
             scratch / (files.temp_prefix("stitch", pid=dead) + "x9"),
             files.temp_path(folder / "talk.mp4", pid=dead), files.temp_path(folder / "talk.srt", pid=dead)]
    kept = [scratch / (files.temp_prefix("segment", pid=live) + "abcd"), files.temp_path(folder / "talk.mp4"),
            folder / "podium-notes.txt", folder / ".talk.part", scratch / "podium-mine",
            folder / "talk.srt.part",
            # the user's own, named as the old sweep's patterns matched (it removed them all)
            folder / f"podium-talk-{dead}-final.mp4", folder / f"podium-drafts-{dead}-old",
            scratch / f"podium-drafts-{dead}-old", scratch / f"podium-segment-{dead}-k2j4",
            folder / f".talk.{dead}.0a1b2c.part.mp4", folder / f".{'0' * 32}.{dead}.x"]
    for path in stale + kept:
        if path.name.startswith("podium-") and path.suffix not in (".txt", ".mp4"):
            path.mkdir()
            (path / "a0.f32").write_bytes(b"\0" * 1000)
        else:
            path.write_bytes(b"partial")
    rc, out, err = run_cli("generate", "--text", "A short one.", "--out", folder / "new.mp4",
                           "--size", "320x180", "--quiet", cwd=tmp_path, tmpdir=scratch)
    assert rc == 0, err
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert (folder / f"podium-drafts-{dead}-old" / "a0.f32").is_file()
    assert (folder / "new.mp4").is_file()
    assert sorted(leftovers(scratch)) == sorted(p.name for p in kept if p.parent == scratch)


def test_what_a_sigkilled_run_really_left_goes_and_the_users_files_stay(tmp_path):
    """A run killed outright while stitching (its hidden .part beside the video, its folders in
    the temp folder): the next render there removes exactly those, and keeps the user's own
    `podium-...` file and folder beside the video (issue 18.1: the old sweep removed them)."""
    folder, scratch = tmp_path / "out", tmp_path / "scratch"
    folder.mkdir()
    mine = [folder / "podium-talk-2024-final.mp4", folder / "podium-drafts-2019-old" / "notes.txt"]
    mine[1].parent.mkdir()
    for path in mine:
        path.write_bytes(b"the user's own")
    script = tmp_path / "talk.txt"
    script.write_text(_sentences(6, "first") + "\n\n" + _sentences(6, "second") + "\n")
    process = start_cli("generate", "--script", script, "--crossfade", "0.5", "--out", folder / "talk.mp4",
                        "--size", "320x180", "--quiet", cwd=tmp_path, tmpdir=scratch)
    try:
        seen = _wait_for(process, [folder], lambda n: ".part" in n, 240)
        assert seen, process.communicate(timeout=60)[1]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    left = [n for n in listing(folder) if ".part" in n] + [n for n in leftovers(scratch) if n.startswith("podium-")]
    assert len(left) >= 2, left  # the .part beside the video and the stitch folder, at least
    rc, out, err = run_cli("generate", "--text", "A short one.", "--out", folder / "new.mp4",
                           "--size", "320x180", "--quiet", cwd=tmp_path, tmpdir=scratch)
    assert rc == 0, err
    assert [n for n in listing(folder) if ".part" in n] == [] and leftovers(scratch) == []
    assert [p.read_bytes() for p in mine] == [b"the user's own"] * 2
    assert sorted(listing(folder)) == ["new.ass", "new.mp4", "new.srt", "podium-drafts-2019-old",
                                      "podium-talk-2024-final.mp4"]  # .ass: the captions beside the .srt


def test_a_leftover_name_is_ours_only_with_its_check():
    """The marker: a name is taken for a leftover only when its check matches the rest."""
    name = files.temp_path(Path("/x/talk.mp4"), pid=4321).name
    assert files.temp_owner(name) == 4321
    forged = name.replace(".4321.", ".4322.")  # another PID, same token: not one we made
    assert files.temp_owner(forged) is None
    folder = files.temp_prefix("segment", pid=4321) + "abcd1234"
    assert files.temp_folder_owner(folder) == 4321
    assert files.temp_folder_owner(folder.replace("segment", "stitch")) is None
    assert files.temp_folder_owner("podium-drafts-2019-old") is None
    assert files.temp_folder_owner("podium-talk-2024-final.mp4") is None


# ---- the few steps that must not stop half-way ----

@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_during_a_deferred_block_acts_after_it(signame):
    """A finished segment's move into the cache is not cut short: the signal waits for the
    block, then raises as it would have (KeyboardInterrupt, or Terminated with its code)."""
    from orchestrator import lifecycle

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    lifecycle.handle_termination()
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            with lifecycle.signals_deferred():
                os.kill(os.getpid(), getattr(signal, signame))
                time.sleep(0.2)  # a handler would have run by now
                steps.append("moved")
            steps.append("after")  # never reached: the signal acts at the end of the block
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert steps == ["moved"]
    assert lifecycle.exit_code(caught.value) == (130 if signame == "SIGINT" else 143)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
