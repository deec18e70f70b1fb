"""Where submitted jobs wait for a worker: the Queue interface, and the embedded one.

The embedded queue (the default, nothing to install) is worker threads in the server process,
each running one job at a time through the Runner. The store is the truth: the queue holds
only job ids, and a starting server puts every queued or running job back on it, so a job
survives a restart (it resumes from the segment cache). A broker-backed queue for
`podium worker` processes implements the same interface.
"""
from __future__ import annotations

import dataclasses
import logging
import queue as stdlib_queue
import threading
import time
from typing import Optional, Protocol

from orchestrator.service.runner import Outcome, Runner
from orchestrator.service.store import FINISHED, JobStore, StoreUnavailable

log = logging.getLogger(__name__)
RECONCILE_S = 10.0  # how often queued rows that no worker holds are put back on the queue
RETRY_S = 1.0  # first pause before writing a job's end again to a store that refused it
INTERNAL = "internal error in the server (see its log)"


class Queue(Protocol):
    def start(self) -> None:
        """Begin taking jobs; re-queue what the store says is queued or running."""

    def stop(self) -> None:
        """Stop taking jobs; running ones are stopped and left to run again at the next start."""

    def submit(self, job_id: str) -> None:
        """Run the (stored, queued) job when a worker is free."""

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (state cancelled); False if it had already finished."""

    def depth(self) -> int:
        """Jobs waiting for a worker."""


def execute(store: JobStore, runner: Runner, job_id: str) -> Optional[Outcome]:
    """Take the job from queued to running and render it; how it ended (the caller stores it).
    None when it was no longer queued (cancelled meanwhile, or another worker has it). A store
    that refuses raises StoreUnavailable only before the job is marked running."""
    job = store.get(job_id)
    if job is None or job.state != "queued":
        return None
    fields = {"state": "running", "started": time.time(), "attempts": job.attempts + 1, "error": None}
    if not store.update(job_id, only_if=("queued",), **fields):
        return None
    job = dataclasses.replace(job, **fields)  # as stored: no second read that could fail
    try:
        outcome = runner.run(job, lambda **fields: store.update(job_id, only_if=("running",), **fields))
    except OSError as err:  # the job folder or the child could not be set up
        outcome = Outcome("failed", error=f"could not start the render: {err.strerror or type(err).__name__}")
    except Exception:  # noqa: BLE001 - a bug must not leave the job running: it ends failed
        log.exception("job %s", job_id)
        outcome = Outcome("failed", error=INTERNAL)
    return outcome


class EmbeddedQueue:
    """`workers` threads in this process, first come first served."""

    def __init__(self, store: JobStore, runner: Runner, workers: int = 1,
                 on_finished=None):
        self.store, self.runner, self.workers = store, runner, max(int(workers), 1)
        self.on_finished = on_finished or (lambda job_id, outcome: None)
        self._ids: "stdlib_queue.Queue[Optional[str]]" = stdlib_queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._held: set[str] = set()  # ids on the queue or in a worker's hands
        self._held_lock = threading.Lock()

    def start(self) -> None:
        for job in self.store.active():
            self.store.update(job.id, only_if=("running",), state="queued")  # it was cut short
            self.submit(job.id)
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"podium-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        thread = threading.Thread(target=self._reconcile, name="podium-reconcile", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for _ in self._threads:
            self._ids.put(None)
        self.runner.stop_all(why="queued")  # run again at the next start, from the cache
        for thread in self._threads:
            thread.join(10)
        self._threads.clear()

    def submit(self, job_id: str) -> None:
        with self._held_lock:
            if job_id in self._held:
                return
            self._held.add(job_id)
        self._ids.put(job_id)

    def cancel(self, job_id: str) -> bool:
        job = self.store.get(job_id)
        if job is None or job.state in FINISHED:
            return False
        if job.state == "queued" and self.store.update(job_id, only_if=("queued",), state="cancelled",
                                                       finished=time.time()):
            return True
        # running: mark it now (the run's own ending cannot overwrite it), then stop the child
        self.store.update(job_id, only_if=("running",), state="cancelled", finished=time.time())
        self.runner.cancel(job_id, why="cancelled")  # or, not started yet, it will not start
        return True

    def depth(self) -> int:
        return self.store.counts()["queued"]

    def _work(self) -> None:
        """Take ids until stopped. Nothing a job does ends this loop: a store that cannot be
        written now leaves the job queued (the reconciler offers it again) or holds its end
        until the store takes it."""
        while not self._stopping.is_set():
            job_id = self._ids.get()
            if job_id is None or self._stopping.is_set():
                return
            try:
                self._one(job_id)
            except Exception:  # noqa: BLE001 - the loop outlives anything one job does
                log.exception("job %s", job_id)
            finally:
                with self._held_lock:
                    self._held.discard(job_id)

    def _one(self, job_id: str) -> None:
        try:
            outcome = execute(self.store, self.runner, job_id)
        except StoreUnavailable as err:  # before the run: still queued, taken again later
            log.warning("job %s not started: %s", job_id, err)
            return
        if outcome is None:
            return
        self._record(job_id, outcome)
        try:
            self.on_finished(job_id, outcome)
        except Exception:  # noqa: BLE001 - metrics must not undo a finished job
            log.exception("job %s: counting its end", job_id)

    def _record(self, job_id: str, outcome: Outcome) -> None:
        """The run's end into the store, tried again (1 s, 2 s, ... 30 s apart) while the store
        refuses, so a job never stays `running` once its render has ended."""
        pause = RETRY_S
        while True:
            try:
                self.store.update(job_id, only_if=("running",), **outcome.fields())
                return
            except StoreUnavailable as err:
                log.warning("job %s ended %s; the store refuses it (%s): again in %.0f s",
                            job_id, outcome.state, err, pause)
            if self._stopping.wait(pause):
                return  # the next start finds it running and runs it again, from the cache
            pause = min(pause * 2, 30.0)

    def _reconcile(self) -> None:
        """Every RECONCILE_S: queued rows that no worker holds go on the queue (a start that
        the store refused, a row written while no id could be queued)."""
        while not self._stopping.wait(RECONCILE_S):
            try:
                for job in self.store.active():
                    if job.state == "queued":
                        self.submit(job.id)
            except Exception:  # noqa: BLE001 - tried again at the next round
                log.exception("reconciling the queue with the store")


def make_queue(store: JobStore, runner: Runner, workers: int = 1, on_finished=None,
               broker: Optional[str] = None, api: Optional[str] = None, **reconcile) -> Queue:
    """The queue `podium serve` uses: the embedded one, or with a broker URL the Redis one that
    `podium worker` processes take from (`api`: the address they reach this server at)."""
    if broker:
        from orchestrator.service.broker import BrokerQueue

        return BrokerQueue(store, broker, api, **reconcile)
    return EmbeddedQueue(store, runner, workers, on_finished=on_finished)
