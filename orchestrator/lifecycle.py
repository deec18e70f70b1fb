"""A run's life: SIGTERM and SIGHUP end it as Ctrl-C does, and leftovers of killed runs go.

The signals raise `Terminated`, a KeyboardInterrupt, so every path that already cleans up on
Ctrl-C (prompts cancelled on the servers, ffmpeg stopped, temporary folders removed, no `.part`
left) does the same for them. A run killed outright (SIGKILL, power cut) cannot clean up; its
temporary names carry its PID and a check that only podium.files makes (`podium-KIND-PID-CHECK-*`
folders in the temp folder, hidden `.NAME.PID.TOKEN.part[.ext]` files beside outputs), so the
next run removes those whose process is gone, and nothing else: a user's own
`podium-talk-2024-final.mp4` or `podium-drafts-2019-old/` beside the video is never touched.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import psutil

from podium.files import temp_folder_owner, temp_owner

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGHUP: 129}  # 128 + the signal, as shells report it


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; `exit_code` is what the CLI returns (143, 129)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.exit_code = signum, EXIT_CODES.get(signum, 128 + signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    return getattr(interrupt, "exit_code", 130)


def handle_termination() -> None:
    """From now on SIGTERM and SIGHUP raise Terminated in the main thread. Only the first one
    does: a second must not cut the clean-up short."""
    raised = []

    def handler(signum, _frame):
        if not raised:
            raised.append(signum)
            raise Terminated(signum)

    for signum in EXIT_CODES:
        signal.signal(signum, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block is done, then act: for the few steps
    that must not stop half-way (a finished segment moving into the cache)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only ever handled in the main thread
        return
    caught: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _f: caught.append(signum))
                for s in (signal.SIGINT, *EXIT_CODES)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])


def _alive(pid: int) -> bool:
    """Whether a process has this PID (someone else's counts: psutil says so for them too)."""
    if pid == os.getpid():
        return True
    try:
        return psutil.pid_exists(pid)
    except OverflowError:  # (no PID is that large)
        return False


def stale_entries(folder: Path, owner=temp_owner, want_dir: bool = False) -> list[Path]:
    """What `owner` says a dead run made in `folder` (a name with podium's check), of the
    right kind (folder or file), this user's and no link."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    found = []
    for entry in entries:
        pid = owner(entry.name)
        if pid is None or _alive(pid):
            continue
        try:
            if entry.is_symlink() or entry.is_dir() != want_dir or entry.stat().st_uid != os.geteuid():
                continue
        except OSError:
            continue
        found.append(Path(folder) / entry.name)
    return found


def remove_stale(out_folder: Path | None = None, temp_folder: Path | None = None) -> list[Path]:
    """Remove what killed runs left: their temporary folders in the temp folder, their hidden
    `.part` files in `out_folder` (where the video goes). What went."""
    temp_folder = Path(temp_folder or tempfile.gettempdir())
    doomed = stale_entries(temp_folder, temp_folder_owner, want_dir=True)
    if out_folder is not None:
        doomed += stale_entries(Path(out_folder), temp_owner)
    removed = []
    for path in doomed:
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
        except OSError:  # not ours to remove after all, or already gone
            pass
    return removed
