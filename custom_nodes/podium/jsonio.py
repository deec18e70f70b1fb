"""Reading JSON (and text files) a user gave: bounded in size and depth, one clear error.

JSON from a user (a script file, a workflow, `--text` that starts with `[` or `{`, an API
request's body) can be built to hurt: a megabyte of `[` makes `json.loads` raise
RecursionError (not a ValueError, so every `except ValueError` let it through as a
traceback), and a huge or endless file (`/dev/zero`, a FIFO) is read until memory runs out
or forever. Every such read goes through here. Torch-free and ComfyUI-free: the orchestrator
and the service import it too.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import UsageError

MAX_BYTES = 16 * 2**20  # more than any script, workflow or request Podium reads
MAX_DEPTH = 64  # a UI workflow nests about 8 deep, a script 4


class JsonInputError(UsageError, ValueError):
    """JSON (or a file) a user gave that cannot be read; the message is a predicate
    ("is not valid JSON (...)", "nests ... deep"), to follow what was read."""

    decode_error: ValueError | None = None


class JsonTooLarge(JsonInputError):
    """Well-formed or not, too big or too deeply nested to be read at all."""


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n:,} bytes"


def loads(text: str | bytes, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing a text over `max_bytes` or nested deeper than `max_depth`."""
    if len(text) > max_bytes:
        raise JsonTooLarge(f"is {_size(len(text))}, more than the {_size(max_bytes)} allowed")
    try:
        data = json.loads(text)
    except RecursionError:
        data = None  # deeper than the interpreter goes: surely deeper than max_depth
        depth = max_depth + 1
    except ValueError as err:  # JSONDecodeError, and bytes that are not UTF-8
        error = JsonInputError(f"is not valid JSON ({err})")
        error.decode_error = err  # where it broke, for a caller that tells a cut text apart
        raise error from None
    else:
        depth = nesting(data, max_depth)
    if depth > max_depth:
        raise JsonTooLarge(f"nests lists and objects more than {max_depth} deep; no Podium "
                             "file or request needs that many")
    return data


def nesting(data: Any, stop: int = MAX_DEPTH) -> int:
    """How deep lists and objects nest in `data` (a scalar: 0), counted without recursion and
    only up to `stop` + 1."""
    deepest, todo = 0, [(data, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > stop:
            break
        todo.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_BYTES) -> bytes:
    """A regular file's bytes, at most `max_bytes`: a device, FIFO or folder is refused before
    it is opened for reading (a FIFO would block, /dev/zero never ends)."""
    path = Path(path).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise JsonInputError("is not there (no such file)") from None
    except OSError as err:
        raise JsonInputError(f"cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, FIFO or socket)"
        raise JsonInputError(f"is {kind}: give a file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)  # (it may have grown since stat)
    except OSError as err:
        raise JsonInputError(f"cannot be read ({err.strerror or err})") from None
    if len(data) > max_bytes:
        raise JsonTooLarge(f"is more than the {_size(max_bytes)} allowed")
    return data


def read_text(path: str | os.PathLike, max_bytes: int = MAX_BYTES, encoding: str = "utf-8-sig") -> str:
    """A regular text file (UTF-8; a BOM is dropped), bounded as `read_bytes`."""
    try:
        return read_bytes(path, max_bytes).decode(encoding)
    except UnicodeDecodeError as err:
        raise JsonInputError(f"is not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_json(path: str | os.PathLike, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON file the user named, bounded as `read_bytes` and `loads`."""
    return loads(read_text(path, max_bytes), max_bytes, max_depth)
