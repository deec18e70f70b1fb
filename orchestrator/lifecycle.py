"""A run's life: SIGTERM and SIGHUP end it as Ctrl-C does, and leftovers of killed runs go.

The signals raise `Terminated`, a KeyboardInterrupt, so every path that already cleans up on
Ctrl-C (prompts cancelled on the servers, ffmpeg stopped, temporary folders removed, no `.part`
left) does the same for them. A run killed outright (SIGKILL, power cut) cannot clean up; its
temporary files carry its PID (`podium-KIND-PID-*` folders in the temp folder, hidden
`.NAME.PID.TOKEN.part[.ext]` files beside outputs, `.KEY.PID.*` staging folders in the segment cache),
so the next run removes those whose process is gone.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from podium.files import temp_owner

EXIT_CODES = {signal.SIGTERM: 143, signal.SIGHUP: 129}  # 128 + the signal, as shells report it
STALE_NAMES = (
    re.compile(r"^podium-[a-z0-9]+-(?P<pid>\d+)-"),  # folders from podium.files.temp_prefix
    re.compile(r"^\.[0-9a-f]{32}\.(?P<pid>\d+)\."),  # segment cache staging: .KEY.PID.*
)


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
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def stale_entries(folder: Path) -> list[Path]:
    """Our temporary files and folders in `folder` whose run's process is dead."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        owner = temp_owner(name)  # .NAME.PID.TOKEN.part[.ext], from podium.files.temp_path
        if owner is not None:
            if not _alive(owner):
                found.append(Path(folder) / name)
            continue
        for pattern in STALE_NAMES:
            match = pattern.match(name)
            if match and not _alive(int(match["pid"])):
                found.append(Path(folder) / name)
                break
    return found


def remove_stale(*folders: Path) -> list[Path]:
    """Remove what killed runs left in `folders` (default: the temp folder); what went."""
    removed = []
    for folder in folders or (Path(tempfile.gettempdir()),):
        for path in stale_entries(Path(folder)):
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
            except OSError:  # not ours to remove after all, or already gone
                pass
    return removed
