"""Where node inputs are read and outputs written.

Outputs go to ComfyUI's output folder inside ComfyUI, else where the runner set. Inside ComfyUI a
graph comes from anyone who can reach the server, so every path a node is given is confined:
relative to ComfyUI's input folder (model paths: or to the model folders), never absolute, never
out through `..` or a link, and anything else is refused with one message that does not tell a
missing file from an unreadable or a forbidden one. Outside ComfyUI (the CLI, in-process runs)
the paths are the user's own: absolute ones as they are, relative ones under the working folder.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional

from .errors import PodiumError

_output_dir: Optional[Path] = None


def set_output_directory(path: Optional[str | Path]) -> None:
    """The in-process runner points outputs at its own folder (None: back to the default)."""
    global _output_dir
    _output_dir = Path(path) if path is not None else None


def output_directory() -> Path:
    if _output_dir is not None:
        return _output_dir
    folder_paths = _folder_paths()  # inside ComfyUI (looked up, never imported)
    return Path(folder_paths.get_output_directory()) if folder_paths is not None else Path.cwd() / "output"


def _folder_paths():
    """ComfyUI's folder_paths when running inside ComfyUI (looked up, never imported)."""
    return sys.modules.get("folder_paths")


def confined() -> bool:
    """Whether path inputs are confined to ComfyUI's folders (inside ComfyUI)."""
    return _folder_paths() is not None


def input_directory() -> Path:
    """Where relative input paths (e.g. files uploaded to ComfyUI) are looked up."""
    folder_paths = _folder_paths()
    return Path(folder_paths.get_input_directory()) if folder_paths is not None else Path.cwd()


def scratch_directory(kind: str) -> Path:
    """A folder for work a node can redo at will (rendered deck pages): ComfyUI's temp folder
    inside ComfyUI (wiped at its start), else a `podium-KIND` folder of the system's temp."""
    folder_paths = _folder_paths()
    if folder_paths is not None:
        return Path(folder_paths.get_temp_directory()) / f"podium-{kind}"
    import tempfile

    return Path(tempfile.gettempdir()) / f"podium-{kind}"


def refused(what: str, value: str, models: Optional[str] = None) -> PodiumError:
    """The one answer for a path that cannot be used inside ComfyUI, whatever the reason."""
    where = "ComfyUI's input folder" + (f" or its models/{models.partition('/')[0]} folders" if models else "")
    return PodiumError(f"{what} {value!r} is not a file this server can use: give the name of a file "
                       f"in {where} (upload it there first)")


def _inside(root: Path, name: str, directory: Optional[bool]) -> Optional[Path]:
    """root/name if it is, links resolved, inside root and a readable file (directory: a folder;
    None: either)."""
    try:
        base = os.path.realpath(root)
        target = os.path.realpath(os.path.join(base, name))
        if os.path.commonpath((base, target)) != base or target == base:
            return None
    except (ValueError, OSError):  # a NUL byte, another drive
        return None
    ok = {True: os.path.isdir, False: os.path.isfile}.get(directory, os.path.exists)(target)
    return Path(target) if ok and os.access(target, os.R_OK) else None


def resolve_input(path: str, what: str = "path", *, models: Optional[str] = None,
                  directory: Optional[bool] = False) -> Path:
    """A user-given file (a folder when `directory`; either when None).

    Inside ComfyUI: a name in the input folder (`models`: or in the model folders of that
    registry folder, e.g. "tts/piper"), else `refused(...)`; ComfyUI's " [input]" suffix is
    understood. Outside: absolute or `~` paths as they are, relative ones under the working
    folder; whether it exists is for the caller to say.
    """
    text = str(path).strip()
    if not confined():
        candidate = Path(text).expanduser()
        return candidate if candidate.is_absolute() else input_directory() / candidate
    name = text[:-len(" [input]")] if text.endswith(" [input]") else text
    roots: list[Path] = [input_directory()]
    if models:
        from .models import search_dirs

        roots += search_dirs(models)  # e.g. models/tts/piper, then models/tts itself
        roots += search_dirs(models.partition("/")[0]) if "/" in models else []
    if name and "\0" not in name and not os.path.isabs(name) and not name.startswith("~"):
        for root in roots:
            found = _inside(root, name, directory)
            if found is not None:
                return found
    raise refused(what, text, models)


def next_output_path(prefix: str, extension: str) -> tuple[Path, str, str]:
    """A fresh `<prefix>_00001.<ext>` under the output folder, ComfyUI style.

    Returns (full path, subfolder relative to the output folder, file name). Inside ComfyUI
    the prefix is read by ComfyUI's own `get_save_image_path` (its %year%, %date% ... variables,
    subfolders and output-folder check); the number stays ours (ComfyUI counts only names
    ending in `_NNNNN_`, and Podium's end in `_NNNNN.<ext>`).
    """
    root = output_directory().resolve()
    target = (root / prefix).resolve()
    get_save_path = getattr(_folder_paths(), "get_save_image_path", None)
    if get_save_path is not None:
        try:
            folder, stem = get_save_path(prefix, str(output_directory()))[:2]
        except Exception:  # ComfyUI raises a bare Exception for a folder outside the output folder
            raise ValueError(f"filename_prefix {prefix!r} points outside the output folder") from None
        target = (Path(folder) / stem).resolve()
    if root != target and root not in target.parents:
        raise ValueError(f"filename_prefix {prefix!r} points outside the output folder")
    folder, stem = target.parent, target.name
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+)\.")
    used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    name = f"{stem}_{max(used, default=0) + 1:05d}.{extension}"
    subfolder = "" if folder == root else folder.relative_to(root).as_posix()
    return folder / name, subfolder, name
