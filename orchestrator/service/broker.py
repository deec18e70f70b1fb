"""Jobs through Redis with Dramatiq, for `podium worker` processes on any machine.

Why Dramatiq: its Redis broker keeps every fetched message in a per-worker "acks" set until
the job ends, and each worker process heartbeats; when a worker stops heartbeating for
`heartbeat_timeout` (killed, machine gone), the next broker that does queue maintenance moves
its unacked messages back onto the queue, so another worker runs the job. That is the
behaviour a killed render needs, built in and tested upstream. (RQ moves a dead worker's job to
a failed registry and needs our own retry; Celery needs acks_late plus a visibility timeout
that must exceed the longest render; arq's retry waits for the job timeout.) Dramatiq is
threads, no event loop, no extra process: one `Worker` object inside `podium worker`.

The message carries only the job id (and the API's address): the server's store stays the
truth, inputs and results travel over the HTTP API (orchestrator/service/worker.py).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from podium.errors import PodiumError, UsageError, one_line

from orchestrator.service.store import FINISHED, JobStore

log = logging.getLogger(__name__)

QUEUE_NAME = "podium"
ACTOR_NAME = "podium_render"
NAMESPACE = "podium"  # the Redis key prefix
HEARTBEAT_TIMEOUT_S = 60.0  # Dramatiq's default: a worker silent this long is taken for dead
MAINTENANCE_CHANCE = 10_000  # of a million broker calls (1 %; Dramatiq's default is 0.1 %)
RECONCILE_S = 30.0  # how often the store's queued jobs are checked against what Redis holds
STALE_S = 300.0  # a running job silent this long, with no message in Redis, is queued again
FRESH_S = 10.0  # a job younger than this (or two rounds) may still be on its way to Redis: left alone


class BrokerError(UsageError):
    """The broker URL is not one Podium can use, or the broker does not answer."""


class BrokerUnavailable(PodiumError):
    """Redis did not take a message now (down, restarting): the API answers 503."""


def make_broker(url: str, heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
                maintenance_chance: int = MAINTENANCE_CHANCE):
    """A Dramatiq Redis broker on `url` with the podium queue declared. The heartbeat timeout
    is how soon a killed worker's job goes to another (and how long a worker may go without
    reaching Redis before its job is handed on); maintenance (which does the handing on) runs
    on that share of broker calls, and an idle worker calls about once a second."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise BrokerError(f"--broker {url!r}: give a Redis URL, e.g. redis://host:6379/0")
    try:
        import redis
        from dramatiq.brokers.redis import RedisBroker
    except ImportError as err:
        raise BrokerError(f"--broker needs {err.name}: install the serve extra "
                          "(pip install -e '.[serve]'; scripts/setup.sh does)") from None

    broker = RedisBroker(url=url, namespace=NAMESPACE, heartbeat_timeout=int(heartbeat_timeout_s * 1000),
                         maintenance_chance=int(maintenance_chance))
    try:
        broker.client.ping()
    except redis.RedisError as err:
        raise BrokerError(f"the broker {url} does not answer ({err}): start Redis there, "
                          "or check --broker") from None
    broker.declare_queue(QUEUE_NAME)
    return broker


def job_message(job_id: str, api: Optional[str]):
    """The message that asks a worker to render one job."""
    from dramatiq import Message

    return Message(queue_name=QUEUE_NAME, actor_name=ACTOR_NAME, args=(job_id,),
                   kwargs={"api": api}, options={})


class BrokerQueue:
    """The server's side of the Queue interface with a broker: it enqueues; workers claim,
    render and report through the API. The store is the truth, Redis a copy of its queued
    jobs that can be lost (a Redis restarted empty): on start and every `reconcile_s` the
    queued jobs Redis does not hold are enqueued again, and so are running jobs with no message
    whose worker has been silent for `stale_s` (its message went with Redis). A duplicate
    message does no harm beyond work: a claim of a finished job is refused, and a second claim
    of a running one supersedes the first run."""

    def __init__(self, store: JobStore, url: str, api: Optional[str] = None, broker=None,
                 reconcile_s: float = RECONCILE_S, stale_s: float = STALE_S):
        self.store, self.url, self.api = store, url, api
        self.broker = broker or make_broker(url)
        self.reconcile_s, self.stale_s = reconcile_s, stale_s
        self._stopping = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._reconcile_loop, name="podium-reconcile", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
        self.broker.close()

    def submit(self, job_id: str) -> None:
        try:
            self.broker.enqueue(job_message(job_id, self.api))
        except Exception as err:  # noqa: BLE001 - redis-py's errors, and what a dropped socket raises
            raise BrokerUnavailable(f"the broker does not take jobs now ({one_line(str(err), 120)}): "
                                    "try again shortly") from None

    def cancel(self, job_id: str) -> bool:
        """Mark it cancelled; a worker that has it learns so at its next report and stops."""
        job = self.store.get(job_id)
        if job is None or job.state in FINISHED:
            return False
        return self.store.update(job_id, only_if=("queued", "running"), state="cancelled",
                                 finished=time.time())

    def depth(self) -> int:
        return self.store.counts()["queued"]

    def held(self) -> set[str]:
        """The job ids of every message Redis holds: waiting, delayed (a retry) or being worked on
        (a message stays in its queue's hash until the worker acknowledges it)."""
        from dramatiq import Message

        client, ids = self.broker.client, set()
        for queue in (QUEUE_NAME, f"{QUEUE_NAME}.DQ"):
            for data in client.hvals(f"{NAMESPACE}:{queue}.msgs"):
                try:
                    ids.add(Message.decode(data).args[0])
                except Exception:  # noqa: BLE001 - not a message of ours: not a job
                    continue
        return ids

    def reconcile(self) -> list[str]:
        """Enqueue what the store has and Redis lost; the job ids enqueued."""
        now, sent = time.time(), []
        fresh = min(FRESH_S, 2 * self.reconcile_s)
        active = [job for job in self.store.active() if now - job.created >= fresh]
        if not active:
            return sent
        held = self.held()
        for job in active:
            if job.id in held:
                continue
            if job.state == "running":
                if now - job.updated < self.stale_s:
                    continue  # its worker may still be at it: it reports, or it goes stale
                if not self.store.update(job.id, only_if=("running",), state="queued"):
                    continue
            self.submit(job.id)
            sent.append(job.id)
        if sent:
            log.warning("enqueued again %d job(s) the broker had lost", len(sent))
        return sent

    def _reconcile_loop(self) -> None:
        wait = 0.0  # the first round at once: a server starting after Redis lost its jobs
        while not self._stopping.wait(wait):
            wait = self.reconcile_s
            try:
                self.reconcile()
            except Exception as err:  # noqa: BLE001 - Redis or the store away: the next round
                log.warning("reconciling with the broker: %s", one_line(str(err) or type(err).__name__, 200))
