"""The user's output files: checked before any work, replaced only when whole."""
from __future__ import annotations

import os
from pathlib import Path


class OutputError(Exception):
    """An output path that cannot be used; the message says why and what to do."""


def check_target(path: str | Path, overwrite: bool) -> Path:
    """Fail before any work if `path` cannot be written, or exists and must be kept."""
    path = Path(path).expanduser().absolute()
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder} (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    if path.is_dir():
        raise OutputError(f"output path is a folder: {path} (give a file name ending in .mp4)")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; pass --force to replace it")
    return path
