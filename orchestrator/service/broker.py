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

import time
from typing import Optional

from podium.errors import UsageError

from .store import FINISHED, JobStore

QUEUE_NAME = "podium"
ACTOR_NAME = "podium_render"
NAMESPACE = "podium"  # the Redis key prefix
HEARTBEAT_TIMEOUT_S = 60.0  # Dramatiq's default: a worker silent this long is taken for dead
MAINTENANCE_CHANCE = 10_000  # of a million broker calls (1 %; Dramatiq's default is 0.1 %)


class BrokerError(UsageError):
    """The broker URL is not one Podium can use, or the broker does not answer."""


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
    """The server's side of the Queue interface with a broker: it only enqueues; workers
    claim, render and report through the API. Redis holds the waiting jobs, so a restart of
    the server loses none and does not enqueue them twice (a duplicate message would only be
    refused at claim time, but it could start a second render of a running job)."""

    def __init__(self, store: JobStore, url: str, api: Optional[str] = None, broker=None):
        self.store, self.url, self.api = store, url, api
        self.broker = broker or make_broker(url)

    def start(self) -> None:
        pass  # the workers take from Redis; nothing of theirs lives in this process

    def stop(self) -> None:
        self.broker.close()

    def submit(self, job_id: str) -> None:
        self.broker.enqueue(job_message(job_id, self.api))

    def cancel(self, job_id: str) -> bool:
        """Mark it cancelled; a worker that has it learns so at its next report and stops."""
        job = self.store.get(job_id)
        if job is None or job.state in FINISHED:
            return False
        return self.store.update(job_id, only_if=("queued", "running"), state="cancelled",
                                 finished=time.time())

    def depth(self) -> int:
        return self.store.counts()["queued"]
