"""The user's output files: checked before any work, replaced only when whole."""
from __future__ import annotations

import tempfile
from pathlib import Path


class OutputError(Exception):
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
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --force to replace it")
    return path
