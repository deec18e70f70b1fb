"""Where submitted jobs wait for a worker: the Queue interface, and the embedded one.

The embedded queue (the default, nothing to install) is worker threads in the server process,
each running one job at a time through the Runner. The store is the truth: the queue holds
only job ids, and a starting server puts every queued or running job back on it, so a job
survives a restart (it resumes from the segment cache). A broker-backed queue for
`podium worker` processes implements the same interface.
"""
from __future__ import annotations

import logging
import queue as stdlib_queue
import threading
import time
from typing import Optional, Protocol

from .runner import Outcome, Runner
from .store import FINISHED, JobStore

log = logging.getLogger(__name__)


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
    """Take the job from queued to running, render it, store how it ended. None when it was
    no longer queued (cancelled meanwhile, or another worker has it)."""
    job = store.get(job_id)
    if job is None or job.state != "queued":
        return None
    if not store.update(job_id, only_if=("queued",), state="running", started=time.time(),
                        attempts=job.attempts + 1, error=None):
        return None
    job = store.get(job_id)
    try:
        outcome = runner.run(job, lambda **fields: store.update(job_id, only_if=("running",), **fields))
    except OSError as err:  # the job folder or the child could not be set up
        outcome = Outcome("failed", error=f"could not start the render: {err}")
    store.update(job_id, only_if=("running",), **outcome.fields())
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

    def start(self) -> None:
        for job in self.store.active():
            self.store.update(job.id, only_if=("running",), state="queued")  # it was cut short
            self._ids.put(job.id)
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"podium-worker-{number}", daemon=True)
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
        while not self._stopping.is_set():
            job_id = self._ids.get()
            if job_id is None or self._stopping.is_set():
                return
            try:
                outcome = execute(self.store, self.runner, job_id)
            except Exception:  # noqa: BLE001 - a bug must not kill the worker: the job says so
                log.exception("job %s", job_id)
                self.store.update(job_id, only_if=("running",), state="failed",
                                  error="internal error in the server (see its log)", finished=time.time())
                continue
            if outcome is not None:
                self.on_finished(job_id, outcome)


def make_queue(store: JobStore, runner: Runner, workers: int = 1, on_finished=None,
               broker: Optional[str] = None, api: Optional[str] = None) -> Queue:
    """The queue `podium serve` uses: the embedded one, or with a broker URL the Redis one that
    `podium worker` processes take from (`api`: the address they reach this server at)."""
    if broker:
        from .broker import BrokerQueue

        return BrokerQueue(store, broker, api)
    return EmbeddedQueue(store, runner, workers, on_finished=on_finished)
