"""Where outputs go: ComfyUI's output folder inside ComfyUI, else what the runner set."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

_output_dir: Optional[Path] = None


def set_output_directory(path: Optional[str | Path]) -> None:
    """The in-process runner points outputs at its own folder (None: back to the default)."""
    global _output_dir
    _output_dir = Path(path) if path is not None else None


def output_directory() -> Path:
    if _output_dir is not None:
        return _output_dir
    try:
        import folder_paths  # only inside ComfyUI

        return Path(folder_paths.get_output_directory())
    except ImportError:
        return Path.cwd() / "output"


def input_directory() -> Path:
    """Where relative input paths (e.g. files uploaded to ComfyUI) are looked up."""
    try:
        import folder_paths  # only inside ComfyUI

        return Path(folder_paths.get_input_directory())
    except ImportError:
        return Path.cwd()


def resolve_input(path: str) -> Path:
    """A user-given file: absolute or `~` paths as they are, relative ones under the inputs."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else input_directory() / candidate


def next_output_path(prefix: str, extension: str) -> tuple[Path, str, str]:
    """A fresh `<prefix>_00001.<ext>` under the output folder, ComfyUI style.

    Returns (full path, subfolder relative to the output folder, file name).
    """
    root = output_directory().resolve()
    target = (root / prefix).resolve()
    if root != target and root not in target.parents:
        raise ValueError(f"filename_prefix {prefix!r} points outside the output folder")
    folder, stem = target.parent, target.name
    folder.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+)\.")
    used = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    name = f"{stem}_{max(used, default=0) + 1:05d}.{extension}"
    subfolder = "" if folder == root else folder.relative_to(root).as_posix()
    return folder / name, subfolder, name
