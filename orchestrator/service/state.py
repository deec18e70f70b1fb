"""What the routes share: the settings (one object, from `podium serve`'s options) and the
running Service (the store, the runner, the queue, the metrics)."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from orchestrator.service.metrics import Metrics
from orchestrator.service.quotas import DEFAULT_LIMITS, FailureLimiter, Limits, RateLimiter
from orchestrator.service.queue import make_queue
from orchestrator.service.runner import Runner
from orchestrator.service.schemas import RequestError
from orchestrator.service.store import JobStore
from orchestrator.service.users import User, UserStore

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Settings:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    token: Optional[str] = None
    workers: int = 1
    servers: list[str] = field(default_factory=list)
    config: Optional[Path] = None
    ollama_host: Optional[str] = None
    max_upload_mb: float = 20.0
    max_deck_mb: float = 100.0  # a slide deck upload (PPTX, PDF)
    broker: Optional[str] = None  # a Redis URL: jobs go to `podium worker` processes
    public_url: Optional[str] = None  # where workers reach this server (default http://host:port)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names taken besides the served ones
    max_output_mb: float = 4000.0  # with --broker: the largest video a worker may upload
    reconcile_s: float = 30.0  # with --broker: how often the store's queued jobs are checked against Redis
    stale_s: float = 300.0  # with --broker: a running job silent this long and lost by Redis runs again
    store_timeout_s: float = 30.0  # how long a store call waits for a database another holds
    limits: dict[str, Limits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))  # per role (quotas.py)
    session_hours: float = 12.0  # how long the page's sign-in lasts
    sign_in_failures: int = 10  # failed sign-ins an address may make a minute (then 429)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

    def upload_limit(self, field: str) -> int:
        """The most bytes an upload of `field` may have: a deck has its own limit (slides with
        pictures are larger than a portrait)."""
        return int(self.max_deck_mb * 1e6) if field == "deck" else self.max_upload_bytes


class Service:
    """What the routes share: the store, the runner, the queue, the metrics."""

    def __init__(self, settings: Settings):
        self.settings = settings
        data = Path(settings.data_dir)
        (data / "jobs").mkdir(parents=True, exist_ok=True)
        self.store = JobStore(data / "jobs.sqlite3", busy_timeout_s=settings.store_timeout_s)
        self.users = UserStore(data / "users.sqlite3", busy_timeout_s=settings.store_timeout_s)
        self.limiter = RateLimiter()
        self.sign_ins = FailureLimiter(settings.sign_in_failures)
        self.submitting = threading.Lock()  # a user's jobs-at-once check and its new job together
        running = (lambda: self.store.counts()["running"]) if settings.broker else (lambda: len(self.runner.running()))
        self.metrics = Metrics(self.store.counts, lambda: self.queue.depth(), running, settings.servers)
        self.runner = Runner(data, settings.servers, settings.config, observe=self.metrics.observe,
                             ollama_host=settings.ollama_host)
        self.queue = make_queue(self.store, self.runner, settings.workers, on_finished=self._finished,
                                broker=settings.broker, api=settings.public_url or _own_url(settings),
                                reconcile_s=settings.reconcile_s, stale_s=settings.stale_s)

    def _finished(self, job_id: str, outcome) -> None:
        self.job_ended(job_id, outcome.state)

    def job_ended(self, job_id: str, state: str) -> None:
        """A run ended (here or on a worker): counted in /metrics and in its owner's minutes."""
        job = self.store.get(job_id)
        seconds = job.finished - job.started if job and job.finished and job.started else None
        self.metrics.job_finished(state, seconds)
        if job is not None and seconds:
            self.users.record(job.owner, rendered_s=seconds)

    def implicit_admin(self) -> bool:
        """Loopback, no --token, no users: whoever reaches the server is its admin (as before users)."""
        from orchestrator.service.cli import is_loopback

        return is_loopback(self.settings.host) and not self.settings.token and not self.users.any_users()

    def limits_of(self, user: User) -> Limits:
        return self.settings.limits.get(user.role, Limits())

    def job(self, job_id: str, seen_by: Optional[int] = None):
        """The job, if `seen_by` (a user id; None: anyone) may see it; else 404, as for none."""
        if not JOB_ID.match(job_id):
            raise RequestError("id", f"{job_id[:40]!r} is not a job id (32 hexadecimal digits)", 422)
        job = self.store.get(job_id, seen_by=seen_by)
        if job is None:
            raise RequestError("id", f"no job with id {job_id}", 404)
        return job


def _own_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"
