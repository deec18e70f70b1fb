"""Segments: one graph run each, cached on disk by content so a rerun redoes only what is missing.

The script is cut once, here; each segment becomes a copy of the workflow whose Script node
holds just that segment (as Podium script JSON, so slide titles and speakers survive).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from podium.engines.script import Script  # pure text: no torch, no numpy
from podium.errors import PodiumError
from podium.files import publish, sha256_file

from orchestrator.render.stitch import Clip
from orchestrator.graphs.workflow import bind

CACHE_VERSION = "2"  # bump when a change to the nodes makes old clips wrong


@dataclass
class SegmentJob:
    index: int
    graph: dict
    key: str  # content hash: graph + the bytes of every local file it reads
    files: dict  # {(node title, input name): local path} to upload when run on a server
    attempts: int = 0
    per_instance: dict = field(default_factory=dict)  # {instance name: (graph, files)} (cinema)

    def work_for(self, instance_name: str) -> tuple[dict, dict]:
        """The graph and files to run on that instance."""
        return self.per_instance.get(instance_name, (self.graph, self.files))


def plan(graph: dict, script: Script, values: dict, files: dict) -> list[SegmentJob]:
    """One bound graph per segment of the script (parse it with parse_script)."""
    jobs = []
    for index, segment in enumerate(script.segments):
        one = Script(title=script.title, segments=[segment], stage=script.stage).to_dict()
        bound = bind(graph, {**values, ("Script", "text"): json.dumps(one, ensure_ascii=False)})
        jobs.append(SegmentJob(index, bound, content_key(bound, files), files))
    return jobs


def plan_per_server(bound: dict[str, tuple[dict, dict, dict]], script: Script,
                    planner: Callable = None) -> list[SegmentJob]:
    """One job per segment where each instance runs its own graph (`bound`: {instance name:
    (graph, values, files)}). The cache key covers every instance's version, not which one
    rendered it, so a segment finished on any of them is reused by a rerun on the same servers.
    `planner(graph, script, values, files)` cuts the runs (default: `plan`, a run a segment)."""
    planner = planner or plan
    per = {name: planner(graph, script, values, files) for name, (graph, values, files) in bound.items()}
    first = next(iter(per.values()))
    jobs = []
    for i, job in enumerate(first):
        keys = sorted({p[i].key for p in per.values()})
        key = hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:32]
        jobs.append(SegmentJob(job.index, job.graph, key, job.files,
                               per_instance={name: (p[i].graph, p[i].files) for name, p in per.items()}))
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
    """$PODIUM_CACHE_DIR, else the user's cache folder as the platform names it (Linux
    $XDG_CACHE_HOME or ~/.cache, macOS ~/Library/Caches, Windows %LOCALAPPDATA%): reruns of
    any job share it."""
    if os.environ.get("PODIUM_CACHE_DIR"):
        return Path(os.environ["PODIUM_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("podium", appauthor=False)) / "segments"


class CacheError(PodiumError):
    """The segment cache folder cannot be written (read-only, full)."""


CLIP_NAMES = ("clip.mov", "clip.mp4", "clip.srt", "clip.ass")  # what an entry may hold


class SegmentCache:
    """Finished segment clips under `<dir>/<key>/` (clip.mov or clip.mp4 as the workflow made
    it, clip.srt and clip.ass, info.json).

    info.json records each file's size and sha256, so an entry that was cut short or damaged
    is noticed when it is used: it is dropped, `warn` says so, and the segment is made again.
    """

    def __init__(self, folder: Path, warn: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self._checked: dict[str, Clip] = {}  # entries verified in this run

    def check_writable(self) -> None:
        """Fail before any work if finished segments could not be kept."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tempfile.NamedTemporaryFile(dir=self.folder, prefix=".podium-probe-").close()
        except OSError as err:
            raise self._unwritable(err) from None

    def get(self, key: str) -> Optional[Clip]:
        if key in self._checked:
            return self._checked[key]
        entry = self.folder / key
        if not entry.exists():
            return None
        clip, problem = self._read(entry)
        if problem:
            self.warn(f"segment cache entry {entry} is damaged ({problem}): dropped, "
                      "the segment is made again")
            self._drop(entry)
            return None
        self._checked[key] = clip
        return clip

    def _read(self, entry: Path) -> tuple[Optional[Clip], Optional[str]]:
        """(the clip, None) when every file is there as recorded, else (None, what is wrong)."""
        try:
            info = json.loads((entry / "info.json").read_text())
        except (OSError, ValueError) as err:
            return None, f"info.json unreadable: {getattr(err, 'strerror', None) or err}"
        if not isinstance(info, dict):
            return None, "info.json is not an object"
        frames, fps, files = info.get("frames"), info.get("fps"), info.get("files")
        if not isinstance(frames, int) or isinstance(frames, bool) or frames <= 0:
            return None, f"info.json has no frame count (frames={frames!r})"
        if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
            return None, f"info.json has no frame rate (fps={fps!r})"
        clip_name = info.get("file", "clip.mp4")
        if not isinstance(files, dict) or clip_name not in files:
            return None, "info.json lists no checksums (made by an older version)"
        for name, want in files.items():
            path = entry / name
            if name not in CLIP_NAMES or not isinstance(want, dict):
                return None, f"info.json lists an unknown file {name!r}"
            try:
                size = path.stat().st_size
            except OSError:
                return None, f"{name} is missing"
            if size != want.get("size"):
                return None, f"{name} is {size} bytes, {want.get('size')} were written"
            if sha256_file(path) != want.get("sha256"):
                return None, f"{name} does not match its checksum"
        side = lambda name: entry / name if name in files else None
        return Clip(entry / clip_name, frames, float(fps), side("clip.srt"), side("clip.ass")), None

    def _drop(self, entry: Path) -> None:
        """Take a bad entry out of the way (renamed first, so no reader sees it half-deleted)."""
        doomed = self.folder / f".{entry.name}.{os.getpid()}.bad"
        try:
            os.rename(entry, doomed)
        except OSError:
            doomed = entry
        shutil.rmtree(doomed, ignore_errors=True)

    def put(self, key: str, video: Path, frames: int, fps: float, srt_path: Optional[Path],
            ass_path: Optional[Path] = None) -> Clip:
        """Move a finished clip in; the entry appears whole (one rename) or not at all."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.{os.getpid()}.", dir=self.folder))
        except OSError as err:
            raise self._unwritable(err) from None
        try:
            files = {}
            clip_name = "clip" + Path(video).suffix
            for source, name in ((video, clip_name), (srt_path, "clip.srt"), (ass_path, "clip.ass")):
                if source is not None:
                    shutil.move(str(source), staging / name)
                    files[name] = {"size": (staging / name).stat().st_size,
                                   "sha256": sha256_file(staging / name)}
            (staging / "info.json").write_text(json.dumps({"frames": frames, "fps": fps, "file": clip_name, "files": files}))
            try:
                publish(staging, self.folder / key, replace=False)
            except FileExistsError:  # another run finished it first: theirs is as good
                pass
        except OSError as err:
            raise self._unwritable(err) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        clip = self.get(key)
        if clip is None:
            raise CacheError(f"segment {key} could not be kept in the cache {self.folder}")
        return clip

    def _unwritable(self, err: OSError) -> CacheError:
        return CacheError(f"cannot write to the segment cache {self.folder}: "
                          f"{err.strerror or err}; free some space there or pass --cache-dir DIR")
