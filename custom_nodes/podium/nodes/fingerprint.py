"""What ComfyUI needs to know about the files a node reads: whether they changed since the last
run (IS_CHANGED) and which ones the user can pick (upload combos over the input folder).

ComfyUI caches a node's output by its inputs; a file changed under the same name looks the same
to it. So every node that reads a file returns a fingerprint from IS_CHANGED:
- the user's media (portrait, reference audio, music, idle clip): a sha256 of the bytes, as
  core's LoadImage does. They are small, and an edit that keeps the size and the second (a
  re-export, a copy with preserved times) must still count;
- model files and folders (voices, checkpoints, LoRAs, diffusers folders): path, size and
  modification time of each file. IS_CHANGED runs on every queue, and hashing gigabytes each
  time would cost seconds to minutes; a new model under the same name has another size or time.
A file that cannot be read gives its error text (so it re-runs once it can be read), never an
exception (ComfyUI would log a warning and re-run every time).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

from ..errors import PodiumError
from ..files import sha256_file
from ..paths import confined, input_directory, resolve_input

# the upload button each kind gets: core's flag for images; our own for audio, whose button the
# pack's web extension draws (core's audio button works only on an input named "audio")
UPLOAD_FLAGS = {"image": "image_upload", "audio": "podium_audio_upload"}
CONTENT_TYPES = {"image": ["image"], "audio": ["audio", "video"]}


def input_files(kind: str) -> list[str]:
    """Names of the input folder's files of this kind ("image" or "audio"), as core's loaders
    list them; outside ComfyUI (no input folder to offer) none."""
    folder_paths = sys.modules.get("folder_paths")
    if folder_paths is None or not confined():
        return []
    folder = input_directory()
    try:
        names = [n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n))]
    except OSError:
        return []
    return sorted(folder_paths.filter_files_content_types(names, CONTENT_TYPES[kind]))


def upload_combo(kind: str, tooltip: str, empty: bool = False, default: str = "") -> tuple:
    """A combo over the input folder's files with an upload button. `empty`: "" is offered
    first (the input is optional in meaning). Any other name (e.g. the orchestrator's
    "podium/x.png" upload) is accepted too: the node's VALIDATE_INPUTS takes the input, so
    ComfyUI skips its list check, and check_upload confines it to the input folder instead."""
    files = input_files(kind)
    options = ([""] if empty else []) + files
    opts = {UPLOAD_FLAGS[kind]: True, "tooltip": tooltip}
    if default or empty:
        opts["default"] = default
    return (options or [default], opts)


def check_upload(value: Optional[str], what: str, empty: bool = False) -> Union[bool, str]:
    """VALIDATE_INPUTS for an upload combo: True for a readable file in the input folder (None:
    linked, checked when it runs), else the one-line reason."""
    if value is None or (empty and not str(value).strip()):
        return True
    try:
        path = resolve_input(value, what)
    except PodiumError as err:
        return str(err)
    if not path.is_file():
        return f"{what} {value!r} not found: give the name of a file in the input folder"
    return True


def content_hash(value: Optional[str], what: str, models: Optional[str] = None) -> str:
    """IS_CHANGED of a media file input: the sha256 of its bytes ("" when empty)."""
    if not value or not str(value).strip():
        return ""
    try:
        return sha256_file(resolve_input(value, what, models=models))
    except (PodiumError, OSError) as err:
        return f"unreadable: {err}"


def stat_stamp(paths: Callable[[], Union[Path, Iterable[Path], None]]) -> str:
    """IS_CHANGED of model files: path, size and mtime of every file `paths()` names (folders
    walked), or the error text when they cannot be found."""
    try:
        found = paths()
    except Exception as err:  # a missing model, a refused path: validation or the run says so
        return f"unavailable: {type(err).__name__}: {err}"
    if found is None:
        return ""
    items = [found] if isinstance(found, (str, os.PathLike)) else list(found)
    return ";".join(_stat(Path(p)) for p in items if p is not None)


def _stat(path: Path) -> str:
    try:
        if path.is_dir():
            return ";".join(_stat(Path(root) / name) for root, _, names in sorted(os.walk(path))
                            for name in sorted(names))
        st = path.stat()
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    except OSError as err:
        return f"{path}:{err.strerror}"


def new_each_run() -> float:
    """IS_CHANGED for "a new result every run": NaN equals nothing, not even itself, so
    ComfyUI never finds the output in its cache."""
    return float("nan")
