"""`podium worker`: render jobs from the broker on this machine, talking to `podium serve` over
its HTTP API, so no disk is shared with the server.

One job, from the message (its id) to the result:
  POST /api/jobs/{id}/claim      the job's request and the names of its input files; refused
                                 (409) once it finished or was cancelled: the message is dropped
  GET  /api/jobs/{id}/inputs/N   each input, into a job folder of this worker's own
  GET  /api/jobs/{id}/profile    a job made with a profile: its archive, checked against the
                                 sha256 the claim gave, imported into that job folder's profiles/
  ...  `podium generate` runs as a child (the Runner serve uses), its progress
  POST /api/jobs/{id}/progress   answered with the job's state: cancelled, or claimed again by
                                 another worker (this one was taken for dead), stops the render
  PUT  /api/jobs/{id}/outputs/K  each output file
  POST /api/jobs/{id}/finish     done or failed, with the error
A worker stopped with Ctrl-C or SIGTERM gives its job back (`release`) and puts it on the queue
again. A worker killed outright keeps the message unacknowledged in Redis; once its heartbeat is
older than --heartbeat-timeout another worker gets it and resumes from the segment cache.

Deployment rule: the segment cache is what a retried job resumes from. Workers on one machine
share it by default (the user cache folder); workers on several machines resume each other's
jobs only when --cache-dir (or PODIUM_CACHE_DIR) is a folder they all mount. Without that, a job
retried on another machine renders again from the start (the result is the same).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import requests

from podium.errors import PodiumError, UsageError, one_line
from podium.files import writing

from orchestrator.service import broker as brokers
from orchestrator.service.runner import Outcome, Runner, job_dir
from orchestrator.service.store import Job

log = logging.getLogger("podium.worker")

JOB_ID = re.compile(r"^[0-9a-f]{32}$")  # the server's own ids (uuid4 hex)
PATIENCE_S = 300.0  # how long claim / upload / finish keep trying while the server is away
REPORT_TIMEOUT_S = 5.0  # a progress report that takes longer is skipped: the next one counts
TIME_LIMIT_MS = 7 * 86400 * 1000  # Dramatiq's default (10 min) would kill a long render
METRIC_EVENTS = ("stage_end", "segment_done", "segment_cached", "failover")  # what /metrics counts
MAX_HELD_EVENTS = 1000  # kept for the next report while the server is away; older ones dropped


class ApiError(PodiumError):
    """The server answered a worker's call with an error, or could not be reached in time."""


class Api:
    """The calls a worker makes to `podium serve` (token in the Authorization header). A patient
    call is tried again by urllib3 (connection refused or reset, 500/502/503/504, Retry-After
    honoured) for about `patience_s`, so a restart of the server or a store that is away for a
    while loses no job; an impatient one (progress) is tried once."""

    def __init__(self, base: str, token: Optional[str], patience_s: float = PATIENCE_S):
        self.base = base.rstrip("/")
        self.patience_s = patience_s
        self.session = _session(token, retries_for(patience_s))
        self.once = _session(token, 0)

    def call(self, method: str, path: str, patient: bool = True, **kwargs) -> requests.Response:
        """The response (any status below 500); a server that is down or answers 5xx (after the
        tries, when `patient`) is an ApiError."""
        kwargs.setdefault("timeout", (10, 120))
        body = kwargs.get("data")
        if hasattr(body, "seek"):
            body.seek(0)  # urllib3 rewinds it for each further try from here
        session = self.session if patient and self.patience_s > 0 else self.once
        try:
            response = session.request(method, self.base + path, **kwargs)
        except requests.RequestException as err:
            raise ApiError(f"{method} {self.base}{path}: {one_line(str(err), 200)}") from None
        if response.status_code >= 500:
            raise ApiError(f"{method} {self.base}{path}: {response.status_code} {one_line(response.text, 200)}")
        return response

    @staticmethod
    def check(response: requests.Response) -> dict:
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ApiError(f"{response.request.method} {response.url}: {response.status_code} "
                           f"{one_line(str(detail), 300)}")
        return response.json() if response.content else {}


class RenderWorker:
    """The Dramatiq actor `podium_render` bound to a broker, rendering with a Runner."""

    def __init__(self, broker, api: Optional[str], token: Optional[str], name: str, data_dir: Path,
                 cache_dir: Path, servers: Optional[list[str]] = None, config: Optional[Path] = None,
                 ollama_host: Optional[str] = None):
        import dramatiq

        self.api, self.token, self.name = api, token, name
        self.data_dir = Path(data_dir)
        self.runner = Runner(self.data_dir, servers=servers, config=config, observe=self._observe,
                             ollama_host=ollama_host,
                             profiles_of=lambda job: job_dir(self.data_dir, job.id) / "profiles")
        self.runner.cache_dir = Path(cache_dir)
        self._events: dict[str, list[dict]] = {}  # per job: for the server's /metrics
        self._events_lock = threading.Lock()
        self.stopping = threading.Event()
        self.actor = dramatiq.Actor(self.render, broker=broker, actor_name=brokers.ACTOR_NAME,
                                    queue_name=brokers.QUEUE_NAME, priority=0,
                                    options={"max_retries": 3, "min_backoff": 5000, "max_backoff": 60000,
                                             "time_limit": TIME_LIMIT_MS})

    def render(self, job_id: str, api: Optional[str] = None) -> None:
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            log.error("dropped a message with a malformed job id %r", job_id)
            return
        if self.stopping.is_set():  # taken in the moment this worker began to stop: put back
            self.actor.send(job_id, api=api)
            return
        base = self.api or api
        if not base:
            log.error("job %s: no API address in the message; start the worker with --api URL", job_id)
            return
        client = Api(base, self.token)
        response = client.call("POST", f"/api/jobs/{job_id}/claim", json={"worker": self.name})
        if response.status_code in (404, 409):
            log.info("job %s: not taken (%s)", job_id, one_line(response.text, 200))
            return
        claim = client.check(response)
        job = Job(**{k: v for k, v in claim["job"].items() if k in Job.__dataclass_fields__})
        attempt = job.attempts
        log.info("job %s: attempt %d on %s", job_id, attempt, self.name)
        folder = job_dir(self.data_dir, job_id)
        shutil.rmtree(folder, ignore_errors=True)  # an earlier attempt's leftovers on this machine
        (folder / "inputs").mkdir(parents=True)
        try:
            for name in claim.get("inputs", []):
                self._download(client, job_id, name, folder / "inputs")
            if claim.get("profile"):
                self.fetch_profile(client, job_id, claim["profile"], folder)
            outcome = self.runner.run(job, lambda **fields: self._report(client, job_id, attempt, fields))
            self._conclude(client, job_id, attempt, outcome, folder, api)
        except Exception as err:  # noqa: BLE001 - the job says so; if it cannot, Dramatiq retries
            log.exception("job %s: the worker failed", job_id)
            try:
                response = client.call("POST", f"/api/jobs/{job_id}/finish", patient=False, json={
                    "worker": self.name, "attempt": attempt, "state": "failed",
                    "error": f"worker {self.name} failed: {one_line(str(err) or type(err).__name__, 300)}"})
            except ApiError:
                raise err from None  # the server is away: the message is retried later
            if response.status_code >= 500:
                raise
        finally:
            self._take_events(job_id)  # what no report carried is dropped with the run
            shutil.rmtree(folder, ignore_errors=True)  # the segments stay in the cache

    @staticmethod
    def _download(client: Api, job_id: str, name: str, into: Path, path: Optional[str] = None) -> None:
        if Path(name).name != name or name.startswith("."):
            raise ApiError(f"job {job_id}: the server named an input {name!r}, not a plain file name")
        response = client.call("GET", path or f"/api/jobs/{job_id}/inputs/{name}", stream=True)
        if response.status_code >= 400:
            client.check(response)
        with writing(into / name) as tmp, open(tmp, "wb") as out:
            for block in response.iter_content(1 << 20):
                out.write(block)

    @staticmethod
    def fetch_profile(client: Api, job_id: str, sent: dict, folder: Path) -> None:
        """The job's profile, as the server sent it and no other: the archive's sha256 checked
        against the claim's, then imported (each file's sha256 checked against its manifest)
        into the job folder's profiles/, where the render reads it (removed with the folder)."""
        from orchestrator.profiles import profile as profiles

        RenderWorker._download(client, job_id, "profile.zip", folder, path=f"/api/jobs/{job_id}/profile")
        archive = folder / "profile.zip"
        if profiles.sha256(archive) != sent.get("sha256"):
            raise ApiError(f"job {job_id}: the profile archive does not match the sha256 the claim gave; "
                           "it was not used")
        with profiles.stored_in(folder / "profiles"):
            imported = profiles.import_archive(archive)
        if imported.name != sent.get("name"):
            raise ApiError(f"job {job_id}: the server sent profile {imported.name}, not {sent.get('name')}")

    def _observe(self, job_id: str, event: dict) -> None:
        """Keep the events the server's metrics count, to send with the next report."""
        if event.get("event") in METRIC_EVENTS:
            kept = {k: event[k] for k in ("event", "stage", "seconds", "instance") if k in event}
            with self._events_lock:
                held = self._events.setdefault(job_id, [])
                held.append(kept)
                del held[:-MAX_HELD_EVENTS]

    def _take_events(self, job_id: str) -> list[dict]:
        with self._events_lock:
            return self._events.pop(job_id, [])

    def _give_back_events(self, job_id: str, events: list[dict]) -> None:
        with self._events_lock:
            held = self._events.setdefault(job_id, [])
            held[:0] = events
            del held[:-MAX_HELD_EVENTS]

    def _report(self, client: Api, job_id: str, attempt: int, fields: dict) -> None:
        """Progress to the server; its answer may stop this run (cancelled, or claimed again)."""
        events = self._take_events(job_id)
        try:
            response = client.call("POST", f"/api/jobs/{job_id}/progress", patient=False,
                                   timeout=REPORT_TIMEOUT_S,
                                   json={"worker": self.name, "attempt": attempt, **fields, "events": events})
        except ApiError as err:
            log.warning("job %s: progress not delivered: %s", job_id, err)
            self._give_back_events(job_id, events)
            return
        if response.status_code == 409:
            why = "cancelled" if "cancelled" in response.text else "superseded"
            log.info("job %s: stopping, %s", job_id, one_line(response.text, 200))
            self.runner.cancel(job_id, why=why)

    def _conclude(self, client: Api, job_id: str, attempt: int, outcome: Outcome, folder: Path,
                  api: Optional[str]) -> None:
        who = {"worker": self.name, "attempt": attempt}
        if outcome.state == "queued":  # this worker is stopping: the job goes back on the queue
            client.call("POST", f"/api/jobs/{job_id}/release", json=who)
            self.actor.send(job_id, api=api)  # as it came: another worker may need its address
            log.info("job %s: given back to the queue", job_id)
            return
        if outcome.state not in ("done", "failed"):
            log.info("job %s: %s", job_id, outcome.state)
            return
        if outcome.state == "done":
            for key, name in outcome.outputs.items():
                with open(folder / name, "rb") as body:
                    client.check(client.call("PUT", f"/api/jobs/{job_id}/outputs/{key}", data=body,
                                             params=who, headers={"Content-Type": "application/octet-stream"}))
        response = client.call("POST", f"/api/jobs/{job_id}/finish",
                               json={**who, "state": outcome.state, "error": outcome.error,
                                     "result": outcome.result, "events": self._take_events(job_id)})
        if response.status_code == 409:
            log.info("job %s: finished here, but %s", job_id, one_line(response.text, 200))
            return
        client.check(response)
        log.info("job %s: %s%s", job_id, outcome.state, f" ({outcome.error})" if outcome.error else "")


def check_api(base: str, token: Optional[str]) -> None:
    """Refuse to start against a server that does not answer or does not take the token (a
    worker token, the server's --token, or an admin's)."""
    try:
        response = Api(base, token, patience_s=0).call("GET", "/api/me", patient=False, timeout=10)
    except ApiError as err:
        raise WorkerSetupError(f"--api {base} does not answer ({err}): start `podium serve --broker ...` "
                               "there, or check the address") from None
    if response.status_code == 401:
        raise WorkerSetupError(f"--api {base} refused the token: give a worker token (`podium serve users add "
                               "NAME --role worker`, then `tokens create NAME`) or the server's --token "
                               "(or set PODIUM_TOKEN)")
    if response.status_code >= 400:
        raise WorkerSetupError(f"--api {base} is not a podium serve ({response.status_code} on /api/me)")
    role = response.json().get("role")
    if role not in ("worker", "admin"):
        raise WorkerSetupError(f"--api {base}: the token is a {role}'s; a worker needs a worker token "
                               "(`podium serve users add NAME --role worker`, then `tokens create NAME`)")


def retries_for(patience_s: float, first_pause_s: float = 0.5, longest_pause_s: float = 10.0) -> int:
    """How many tries again urllib3's backoff (no pause, then `first_pause_s` doubling up to
    `longest_pause_s`) makes in about `patience_s` of pauses."""
    tries, waited, pause = 0, 0.0, 0.0
    while waited < patience_s:
        tries += 1
        waited += pause
        pause = min(first_pause_s if pause == 0 else pause * 2, longest_pause_s)
    return tries


def _session(token: Optional[str], retries: int) -> requests.Session:
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    retry = Retry(total=retries, backoff_factor=0.25, backoff_max=10.0, allowed_methods=None,
                  status_forcelist=(500, 502, 503, 504), raise_on_status=False,
                  respect_retry_after_header=True)
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class WorkerSetupError(UsageError):
    """`podium worker` cannot start as asked (the server's address or token)."""


def default_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(args) -> int:
    """`podium worker`: take jobs until Ctrl-C or SIGTERM; a job in progress is given back."""
    from dramatiq import Worker

    from orchestrator import lifecycle
    from orchestrator.render.segments import default_cache_dir

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("dramatiq").setLevel(logging.WARNING)
    broker = brokers.make_broker(args.broker, heartbeat_timeout_s=args.heartbeat_timeout,
                                 maintenance_chance=args.maintenance_chance)
    data_dir = Path(args.data_dir or _default_data_dir()).expanduser()
    cache_dir = Path(args.cache_dir or default_cache_dir()).expanduser()
    worker = RenderWorker(broker, api=args.api, token=args.token,
                          name=args.name or default_name(), data_dir=data_dir, cache_dir=cache_dir,
                          servers=args.server, config=args.config, ollama_host=args.ollama_host)
    if args.api:
        check_api(args.api, worker.token)
    # one job at a time, and no second one held back while it renders (other workers take it)
    dramatiq_worker = Worker(broker, queues={brokers.QUEUE_NAME}, worker_threads=1)
    dramatiq_worker.queue_prefetch = 1
    dramatiq_worker.start()
    print(f"worker {worker.name}: taking jobs from {args.broker} (cache {cache_dir})", file=sys.stderr,
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt as interrupt:
        print(f"worker {worker.name}: stopping; a job in progress goes back to the queue", file=sys.stderr)
        worker.stopping.set()
        worker.runner.stop_all(why="queued")
        dramatiq_worker.stop(timeout=60_000)
        print(f"worker {worker.name}: stopped", file=sys.stderr)
        return lifecycle.exit_code(interrupt)
    finally:
        broker.close()


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("podium", appauthor=False)) / "worker"
