"""Writing the user's files: whole or not at all."""
from __future__ import annotations

import os
from pathlib import Path


def temp_prefix(kind: str) -> str:
    """`podium-KIND-PID-`, the prefix of a temporary folder: should the run be killed outright,
    the next one sees from the PID that its owner is dead and removes it."""
    return f"podium-{kind}-{os.getpid()}-"


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write to a hidden temporary name beside `path`, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
