"""The user's output files: checked before any work, replaced only when whole."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from podium.errors import UsageError


class OutputError(UsageError):
    """An output path that cannot be used; the message says why and what to do."""


def check_target(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work if `path` cannot be written, or exists and must be kept."""
    path = Path(path).expanduser().absolute()
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a folder: choose an output path in a folder")
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder} (create it first)")
    try:  # os.access trusts permission bits; read-only mounts and /proc only show on a write
        tempfile.NamedTemporaryFile(dir=folder, prefix=".podium-probe-").close()
    except OSError:
        raise OutputError(f"output folder is not writable: {folder}") from None
    if path.is_dir():
        raise OutputError(f"output path is a folder: {path} (give a file name ending in .mp4)")
    if path.exists() and not path.is_file():  # not even --force replaces a device node or a FIFO
        raise OutputError(f"{path} is not a regular file (a device, FIFO or socket): choose a file "
                          "name for the output")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --force to replace it")
    return path


def _same(a: Path, b: Path) -> bool:
    """Whether two paths name one file (by name after links are followed, or by inode)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_distinct(written: dict[str, Path], inputs: dict[str, Path]) -> None:
    """Fail before any work if two files a job writes are one, or one is an input (not even
    --force lets a job overwrite what it reads or what it just wrote)."""
    outs = list(written.items())
    for i, (what, path) in enumerate(outs):
        for option, source in inputs.items():
            if _same(path, source):
                raise OutputError(f"{what} would overwrite {source}, the {option} input: choose "
                                  "another --out")
        for other, other_path in outs[i + 1:]:
            if _same(path, other_path):
                raise OutputError(f"{what} and {other} would be the same file, {path}: give --out a "
                                  "name ending in .mp4")


def print_summary(lines: list[str], written: Path) -> None:
    """The closing lines on stdout, once the video is written whole. A stdout that cannot take
    them (a full disk, a closed pipe) does not fail the run: one warning on stderr, and stdout
    goes to /dev/null so nothing fails at exit either (Python would exit 120)."""
    try:
        print("\n".join(lines), flush=True)
    except (OSError, ValueError) as err:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        reason = getattr(err, "strerror", None) or err
        print(f"warning: {written} is written, but stdout could not take the summary ({reason})",
              file=sys.stderr)
