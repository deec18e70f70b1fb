"""Segments: one graph run each, cached on disk by content so a rerun redoes only what is missing.

The script is cut once, here; each segment becomes a copy of the workflow whose Script node
holds just that segment (as Podium script JSON, so slide titles and speakers survive).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from podium.engines.script import Script  # pure text: no torch, no numpy

from .stitch import Clip
from .workflow import bind

CACHE_VERSION = "2"  # bump when a change to the nodes makes old clips wrong


@dataclass
class SegmentJob:
    index: int
    graph: dict
    key: str  # content hash: graph + the bytes of every local file it reads
    files: dict  # {(node title, input name): local path} to upload when run on a server
    attempts: int = 0


def plan(graph: dict, script: Script, values: dict, files: dict) -> list[SegmentJob]:
    """One bound graph per segment of the script (parse it with parse_script)."""
    jobs = []
    for index, segment in enumerate(script.segments):
        one = Script(title=script.title, segments=[segment], stage=script.stage).to_dict()
        bound = bind(graph, {**values, ("Script", "text"): json.dumps(one, ensure_ascii=False)})
        jobs.append(SegmentJob(index, bound, content_key(bound, files), files))
    return jobs


def content_key(graph: dict, files: dict) -> str:
    """A hash of the graph and of the bytes of each file fed to it (not of where they lie)."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(json.dumps(graph, sort_keys=True).encode())
    for (title, input_name), path in sorted(files.items()):
        digest.update(f"{title}/{input_name}".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:32]


def default_cache_dir() -> Path:
    """$PODIUM_CACHE_DIR, else the user's cache folder: reruns of any job share it."""
    if os.environ.get("PODIUM_CACHE_DIR"):
        return Path(os.environ["PODIUM_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "podium" / "segments"


class SegmentCache:
    """Finished segment clips under `<dir>/<key>/` (clip.mov or clip.mp4 as the workflow made
    it, clip.srt, info.json)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, key: str) -> Optional[Clip]:
        entry = self.folder / key
        try:
            info = json.loads((entry / "info.json").read_text())
        except (OSError, ValueError):
            return None
        srt_path = entry / "clip.srt"
        return Clip(entry / Path(info.get("file", "clip.mp4")).name, info["frames"], info["fps"],
                    srt_path if srt_path.exists() else None)

    def put(self, key: str, video: Path, frames: int, fps: float, srt_path: Optional[Path]) -> Clip:
        """Move a finished clip in; the entry appears whole (one rename) or not at all."""
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.folder))
        try:
            name = "clip" + Path(video).suffix
            shutil.move(str(video), staging / name)
            if srt_path is not None:
                shutil.move(str(srt_path), staging / "clip.srt")
            (staging / "info.json").write_text(json.dumps({"frames": frames, "fps": fps, "file": name}))
            try:
                os.rename(staging, self.folder / key)
            except OSError:  # another run finished it first: theirs is as good
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(key)
