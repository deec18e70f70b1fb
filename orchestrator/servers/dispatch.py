"""Dispatch: segment graphs to instances, finished clips into the cache.

In-process, segments run one after another in this thread (Ctrl-C lands where it should).
With servers, each healthy instance has a worker that takes the next segment as soon as it is
free, so the least-loaded instance always gets the work; a segment whose instance vanished
goes back in the queue for another, a bounded number of times.
"""
from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Protocol

from podium.errors import PodiumError
from podium.files import temp_prefix

from orchestrator.lifecycle import signals_deferred
from orchestrator.render.segments import SegmentCache, SegmentJob
from orchestrator.render.stitch import Clip

MAX_ATTEMPTS = 3
SETTLE_S = 30.0  # after Ctrl-C or a failure: how long finished segments may take to reach the cache
log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mov", ".mp4")  # a segment (lossless audio, see PodiumSaveVideo), a finished video
StatusSink = Callable[[str, str, dict], None]  # (instance name, event type, data)


class RenderFailed(PodiumError):
    """A segment could not be rendered anywhere; the message says why."""


class InstanceGone(Exception):
    """An instance stopped answering: its segment may be re-run elsewhere."""


class Instance(Protocol):
    name: str

    def produce(self, graph: dict, files: dict, workdir: Path,
                on_event: Callable[[str, dict], None]) -> dict[str, list[tuple[Path, dict]]]:
        """Run `graph` (its `files` inputs made available where it runs); return the files its
        outputs list, by ui key ("images", "subtitles"), copied into `workdir`, with their info."""

    def cancel(self) -> None:
        """Stop what this instance is doing for us (Ctrl-C)."""


def output_files(outputs: dict, locate: Callable[[dict], Path]) -> dict[str, list[tuple[Path, dict]]]:
    """The files a graph's outputs (history format) list, by ui key, located with `locate`."""
    found: dict[str, list[tuple[Path, dict]]] = {}
    for ui in outputs.values():
        for key, items in ui.items():
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    found.setdefault(key, []).append((locate(item), item))
    return found


def render_segment(instance: Instance, job: SegmentJob, workdir: Path, on_event) -> tuple[Path, list[Path], dict]:
    """(video, its subtitle files (.srt, .ass; none when it has none), video info) of one segment."""
    graph, files = job.work_for(instance.name)
    produced = instance.produce(graph, files, workdir, on_event)
    videos = [(p, info) for p, info in produced.get("images", []) if p.suffix in VIDEO_SUFFIXES]
    if not videos:
        raise RenderFailed("the workflow produced no video: does it end in a Podium Save Video node?")
    subtitles = produced.get("subtitles", [])
    return videos[0][0], [p for p, _ in subtitles], videos[0][1]


def render_all(jobs: list[SegmentJob], instances: list[Instance], cache: SegmentCache,
               on_status: StatusSink) -> list[Clip]:
    """Clips for every job, in order: from the cache, or rendered and cached."""
    clips: dict[int, Clip] = {}
    todo = []
    for job in jobs:
        cached = cache.get(job.key)
        if cached is not None:
            clips[job.index] = cached
            on_status("cache", "segment_cached", {"segment": job.index})
        else:
            todo.append(job)
    if len(instances) == 1 and getattr(instances[0], "in_process", False):
        for job in todo:
            clips[job.index] = _render_one(instances[0], job, cache, on_status)
    elif todo:
        _render_parallel(todo, instances, cache, on_status, clips)
    return [clips[job.index] for job in jobs]


def _render_one(instance: Instance, job: SegmentJob, cache: SegmentCache, on_status: StatusSink) -> Clip:
    on_status(instance.name, "segment_start", {"segment": job.index})
    with tempfile.TemporaryDirectory(prefix=temp_prefix("segment")) as work:
        video, subtitles, info = render_segment(instance, job, Path(work),
                                          lambda t, d: on_status(instance.name, t, d))
        with signals_deferred():  # a finished segment reaches the cache, Ctrl-C or not
            clip = cache.put(job.key, video, int(info["frames"]), float(info["fps"]), *_by_kind(subtitles))
    on_status(instance.name, "segment_done", {"segment": job.index})
    return clip


def _by_kind(subtitles: list[Path]) -> tuple[Optional[Path], Optional[Path]]:
    """(the .srt, the .ass) among a segment's subtitle files, None for one it lacks."""
    pick = lambda suffix: next((p for p in subtitles if p.suffix == suffix), None)
    return pick(".srt"), pick(".ass")


def _render_parallel(todo, instances, cache, on_status, clips) -> None:
    """One worker thread per instance, all taking from one queue; the first fatal error (or
    Ctrl-C) stops everything: what runs is cancelled, and what has already finished on a
    server is still downloaded into the cache (for SETTLE_S at most), so a rerun keeps it."""
    # (0 for a segment taken from a vanished instance, so it is the next one run; index)
    pending: "queue.PriorityQueue[tuple[int, int, SegmentJob]]" = queue.PriorityQueue()
    for job in todo:
        pending.put((1, job.index, job))
    settled = threading.Semaphore(0)  # released once per job that finished or failed for good
    stop = threading.Event()
    failure: list[BaseException] = []
    alive = {i.name for i in instances}
    lock = threading.Lock()

    def worker(instance: Instance) -> None:
        while not stop.is_set():
            try:
                job = pending.get(timeout=0.2)[2]
            except queue.Empty:
                continue
            if stop.is_set():
                return
            try:
                clips[job.index] = _render_one(instance, job, cache, on_status)
            except InstanceGone as gone:
                if stop.is_set():  # cancelled with the job: not a vanished instance
                    return
                job.attempts += 1
                with lock:
                    alive.discard(instance.name)
                    nobody_left = not alive
                retried = job.attempts < MAX_ATTEMPTS and not nobody_left
                on_status(instance.name, "instance_gone",
                          {"segment": job.index, "error": str(gone), "retried": retried})
                if not retried:
                    failure.append(RenderFailed(
                        f"segment {job.index + 1} failed on {job.attempts} instance(s), last: {gone}"
                        + ("; no healthy instance is left" if nobody_left else "")))
                    settled.release()
                else:
                    pending.put((0, job.index, job))  # the next free instance takes it first
                return
            except BaseException as err:  # a graph error fails everywhere: stop the job
                if not stop.is_set():  # (after a stop, errors are only the cancellation's echo)
                    failure.append(err)
            settled.release()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True, name=f"podium-{i.name}")
               for i in instances]
    for thread in threads:
        thread.start()
    ended_well = False
    try:
        for _ in todo:
            settled.acquire()
            if failure:
                break
        ended_well = not failure
    finally:
        stop.set()
        if not ended_well:  # Ctrl-C, SIGTERM, or a failure
            with lock:
                running = [i for i in instances if i.name in alive]
            _wind_down(running, threads)
    if failure:
        raise failure[0]


def _wind_down(instances: list, workers: list[threading.Thread]) -> None:
    """Cancel what the instances run (each in its own thread: a hung one must not hold up the
    others), then let the workers finish: one whose segment had already finished on its server
    downloads it into the cache. A second Ctrl-C stops the wait."""
    cancels = [threading.Thread(target=_cancel_quietly, args=(i,), daemon=True) for i in instances]
    for thread in cancels:
        thread.start()
    deadline = time.monotonic() + SETTLE_S
    for thread in [*cancels, *workers]:
        thread.join(max(0.0, deadline - time.monotonic()))


def _cancel_quietly(instance) -> None:
    try:
        instance.cancel()
    except Exception as err:  # noqa: BLE001 - best effort: the job is ending anyway
        log.debug("could not cancel on %s: %s", instance.name, err)  # the job says why it ends


class InProcessInstance:
    """The pack's nodes run here, in this process (no ComfyUI needed)."""

    name = "in-process"
    in_process = True

    def produce(self, graph: dict, files: dict, workdir: Path, on_event) -> dict[str, list[tuple[Path, dict]]]:
        from orchestrator.render.embedded import run_graph
        from orchestrator.graphs.workflow import bind

        graph = bind(graph, {key: str(path) for key, path in files.items()})
        outputs = run_graph(graph, workdir, on_event=on_event)
        return output_files(outputs, lambda item: workdir / item.get("subfolder", "") / item["filename"])

    def cancel(self) -> None:
        pass
