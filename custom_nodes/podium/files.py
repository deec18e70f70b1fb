"""Writing the user's files: whole or not at all, and never over a file that must be kept.

Everything is written under a hidden temporary name beside its destination (so the final move
is a rename on the same file system) and then published: replaced when the caller may replace,
else linked into place, which fails if a file of that name appeared meanwhile.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Temporary names carry their run's PID, so a later run can tell a dead run's leftovers, and a
# check over the rest of the name (a keyed hash), so that only names this code made are ever
# taken for leftovers: a user's `podium-talk-2024-final.mp4` or `.notes.12.abc.part` never is.
# `.NAME.PID.NONCE+CHECK.part[.EXT]` beside an output; `podium-KIND-PID-CHECK-*` temp folders.
_TEMP = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.(?P<nonce>[0-9a-f]{6})(?P<check>[0-9a-f]{6})"
                   r"\.part(?P<ext>\.[^.]*)?$")
_FOLDER = re.compile(r"^podium-(?P<kind>[a-z0-9_]+)-(?P<pid>\d+)-(?P<check>[0-9a-f]{8})-")


def _check(*parts: object, size: int) -> str:
    """The marker in a temporary name: a keyed hash of its other parts (`size` bytes, hex)."""
    text = "\0".join(map(str, parts)).encode("utf-8", "surrogateescape")
    return hashlib.blake2s(text, key=b"podium temporary name", digest_size=size).hexdigest()


def temp_prefix(kind: str, pid: int | None = None) -> str:
    """`podium-KIND-PID-CHECK-`, the prefix of a temporary folder: should the run be killed
    outright, the next one sees from the PID that its owner is dead and removes it."""
    pid = os.getpid() if pid is None else pid
    return f"podium-{kind}-{pid}-{_check('folder', kind, pid, size=4)}-"


def temp_path(path: str | Path, keep_suffix: bool = True, pid: int | None = None) -> Path:
    """A hidden, unused name beside `path` (ffmpeg picks the format by suffix, so it keeps it)."""
    path, pid = Path(path), os.getpid() if pid is None else pid
    ext = path.suffix if keep_suffix else ""
    stem = path.stem if keep_suffix else path.name
    nonce = secrets.token_hex(3)
    return path.with_name(f".{stem}.{pid}.{nonce}{_check('part', stem, pid, nonce, ext, size=3)}.part{ext}")


def temp_owner(name: str) -> int | None:
    """The process id in a name `temp_path` made, or None for any other name."""
    match = _TEMP.match(name)
    if not match or match["check"] != _check("part", match["stem"], match["pid"], match["nonce"],
                                             match["ext"] or "", size=3):
        return None
    return int(match["pid"])


def temp_folder_owner(name: str) -> int | None:
    """The process id in a folder name `temp_prefix` began, or None for any other name."""
    match = _FOLDER.match(name)
    if not match or match["check"] != _check("folder", match["kind"], match["pid"], size=4):
        return None
    return int(match["pid"])


def publish(tmp: str | Path, path: str | Path, replace: bool = True) -> Path:
    """Move the finished `tmp` to `path`. `replace=False`: FileExistsError if `path` exists,
    however late it appeared (a link cannot replace; the check and the move are one step)."""
    tmp, path = Path(tmp), Path(path)
    if replace:
        os.replace(tmp, path)
        return path
    if tmp.is_dir():
        try:
            os.rename(tmp, path)  # a directory cannot replace a non-empty one
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(errno.EEXIST, "already exists", str(path)) from None
            raise
        return path
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "already exists", str(path)) from None
    except OSError as err:  # no hard links here (FAT, some network shares): claim the name first
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        os.replace(tmp, path)
        return path
    tmp.unlink()
    return path


def publish_all(pairs: list[tuple[Path, Path]], replace: bool = True) -> None:
    """Publish several (tmp, path) in order. Without `replace` it is all or none: when a name
    is taken, the files already published are taken back (those still ours, by inode)."""
    made = []
    try:
        for tmp, path in pairs:
            publish(tmp, path, replace)
            made.append((Path(path), os.stat(path)))
    except BaseException:
        for path, st in made if not replace else ():
            try:
                now = os.stat(path)
            except OSError:
                continue
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                path.unlink()
        raise


@contextmanager
def writing(path: str | Path, replace: bool = True, keep_suffix: bool = True) -> Iterator[Path]:
    """`with writing(dest) as tmp:` write `tmp`; it becomes `dest` when the block ends well,
    and is removed whatever happens."""
    tmp = temp_path(path, keep_suffix)
    try:
        yield tmp
        publish(tmp, path, replace)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str, replace: bool = True) -> Path:
    """Write `text` (UTF-8) to `path` whole or not at all."""
    with writing(path, replace) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_copy(source: str | Path, path: str | Path, replace: bool = True) -> Path:
    """Copy `source` to `path` whole or not at all."""
    with writing(path, replace) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)


def sha256_file(*paths: str | Path) -> str:
    """The sha256 hex digest of the files' bytes, one after the other, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
