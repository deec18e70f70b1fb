"""Resumable, verified downloads: `download(url, dest, sha256=..., size=...)`.

Bytes go to `.<name>.part` beside `dest`; a cut connection is resumed with an HTTP Range
request; `dest` is replaced only by a whole file whose size and sha256 match.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import requests
import urllib3
from podium.errors import PodiumError
from podium.files import publish, sha256_file
from tqdm import tqdm

CHUNK = 1 << 18
TIMEOUT = (15, 60)  # (connect, read) seconds
BACKOFF_S = 1.0     # wait before retry k: BACKOFF_S * 2**(k-1)
_CUT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError)


class DownloadError(PodiumError):
    """A download failed; the message says why and what was (not) written."""


def part_path(dest: Path) -> Path:
    return dest.with_name("." + dest.name + ".part")


def auth_headers(url: str) -> dict:
    """Authorization for huggingface.co when $HF_TOKEN is set (requests drops it on redirects
    to another host, e.g. the signed CDN URL)."""
    host = (urlsplit(url).hostname or "").lower()
    token = os.environ.get("HF_TOKEN")
    if token and (host == "huggingface.co" or host.endswith(".huggingface.co")):
        return {"Authorization": f"Bearer {token}"}
    return {}


def download(url: str, dest, sha256: Optional[str] = None, size: Optional[int] = None,
             progress: bool = True, session: Optional[requests.Session] = None,
             retries: int = 3) -> Path:
    """Fetch `url` to `dest` (resuming a previous `.part`); returns `dest`. A cut connection is
    retried `retries` times; a failure keeps the `.part` for a later resume, except a bad file,
    which is deleted. An existing `dest` is left alone unless a verified file replaces it."""
    dest, session = Path(dest), session or requests.Session()
    part = part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    with tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
              disable=not progress, leave=False) as bar:
        while True:
            have = part.stat().st_size if part.exists() else 0
            if size is not None and have >= size:
                break  # whole already (or too long: the checks below say so)
            try:
                if _fetch(session, url, part, have, size, bar):
                    break
                part.unlink(missing_ok=True)  # the server cannot serve that range: start over
                failures += 1
                error = "the server refused to resume"
            except _CUT as exc:
                failures += 1
                error = str(exc)
            if failures > retries:
                kept = part.stat().st_size if part.exists() else 0
                if not kept:
                    part.unlink(missing_ok=True)
                    raise DownloadError(f"{url}: failed {failures} times ({error}); nothing was "
                                        "downloaded: check the network and run the command again")
                raise DownloadError(f"{url}: failed {failures} times ({error}); {kept} bytes kept "
                                    f"in {part}: run the same command again to resume")
            time.sleep(BACKOFF_S * 2 ** (failures - 1))
    _check(url, dest, part, sha256, size)
    publish(part, dest)
    return dest


def _fetch(session, url: str, part: Path, have: int, size: Optional[int], bar) -> bool:
    """One request appending to `part`; False when the server cannot serve from `have`."""
    headers = {"Accept-Encoding": "identity", **auth_headers(url)}  # bytes as stored: resumable
    if have:
        headers["Range"] = f"bytes={have}-"
    with session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as r:
        content_range = r.headers.get("Content-Range", "")  # "bytes 100-199/200"
        if r.status_code == 416 or (r.status_code == 206
                                    and not content_range.startswith(f"bytes {have}-")):
            return False
        if r.status_code not in (200, 206):
            raise DownloadError(f"{url}: HTTP {r.status_code} {r.reason}; nothing was downloaded")
        if r.status_code == 200:
            have = 0  # the server ignored Range (or there was nothing to resume): start over
        length = r.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else size
        bar.reset(total=total)
        bar.update(have)
        # read1 hands over every byte that arrived before a cut (read() would drop a partial chunk)
        read = getattr(r.raw, "read1", None) or r.raw.read
        with open(part, "ab" if have else "wb") as f:
            while chunk := read(CHUNK, decode_content=False):
                f.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise requests.ConnectionError("the server closed the connection early")
    return True


def _check(url: str, dest: Path, part: Path, sha256: Optional[str], size: Optional[int]) -> None:
    """Delete `part` and raise unless its size and sha256 are the expected ones."""
    got_size = part.stat().st_size
    problem = f"expected {size} bytes, got {got_size}" if size not in (None, got_size) else None
    if problem is None and sha256 and (got := sha256_file(part)) != sha256.lower():
        problem = f"sha256 mismatch: expected {sha256}, got {got}"
    if problem:
        kept = f"{dest} was left as it was" if dest.exists() else f"{dest} was not written"
        part.unlink()
        raise DownloadError(f"{url}: {problem}; the download was deleted and {kept}")
