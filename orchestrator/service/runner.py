"""Run one job through the same code path as `podium generate`: the CLI itself, as a child.

The service never imports torch, and the in-process renderer does, so each job is a
`podium generate --progress-json` child process (in-process, or on the configured ComfyUI
servers). Its JSON lines become the job's progress (per segment and stage) and an ETA;
cancelling is SIGTERM, which the CLI turns into a clean stop (prompts cancelled, no
half-written file). Finished segments live in the data folder's segment cache, so a job run
again after a restart renders only what is missing. The child dies with its parent (Linux:
PR_SET_PDEATHSIG), so a server killed outright leaves no render running behind it.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from pydantic import ValidationError

from podium.errors import one_line

from orchestrator.request import DEFAULT_VOICE, RenderRequest
from orchestrator.service.store import Job

log = logging.getLogger(__name__)
VIDEO, SUBTITLES, SCRIPT_TEXT, LOG = "video.mp4", "video.srt", "script.txt", "log.txt"
REQUEST = "request.json"  # what the child renders (orchestrator/request.py's RenderRequest)
NOTES = "video.notes.md"  # a guided lecture's narration, one section a slide: edit, then upload as notes
CAPTIONS = "video.ass"  # the captions as drawn (libass), words and karaoke included
OUTPUTS = {"video": VIDEO, "subtitles": SUBTITLES, "captions": CAPTIONS, "script_json": "video.json",
           "script_md": "video.md", "notes": NOTES}
RENDER_SHARE = 0.97  # of the progress bar: segments; the rest is stitching
REPORT_EVERY_S = 0.25  # progress reaches the store at most this often (segment events: always)
STOP_GRACE_S = 30.0  # after SIGTERM, how long the CLI may take to clean up before SIGKILL

# The child: ask Linux to SIGTERM it when the thread that started it ends (the server died), then
# run the CLI. A parent already gone before that (a race) ends it at once.
_BOOT = (
    "import os, signal, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    import ctypes\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "    if os.getppid() != int(sys.argv.pop(1)): sys.exit(143)\n"
    "else:\n"
    "    sys.argv.pop(1)\n"
    "from orchestrator.cli.main import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _tell(report: Callable[..., None], job_id: str, **fields) -> None:
    """Progress is worth a try, not the render: a report that fails (a store that cannot be
    written now) is logged and the next one carries the news."""
    try:
        report(**fields)
    except Exception as err:  # noqa: BLE001 - whatever the store or the network raised
        log.warning("job %s: progress not recorded: %s", job_id, one_line(str(err) or type(err).__name__, 200))


def job_dir(data_dir: Path, job_id: str) -> Path:
    """The one folder a job's inputs and outputs live in. `job_id` is the server's own
    (uuid4 hex), checked by the caller; never a request value."""
    return Path(data_dir) / "jobs" / job_id


def profiles_dir(data_dir: Path, owner: int) -> Path:
    """The profiles of one user (users.py's id; 0: the server's own admin): a folder of its own,
    so that no user reads or lists another's (orchestrator/profiles/profile.py's layout)."""
    return Path(data_dir) / "profiles" / f"user-{int(owner)}"


@dataclass
class Outcome:
    """How a run ended, as the job's final fields."""

    state: str  # done | failed | cancelled | queued (stopped by a server shutdown: run again)
    error: Optional[str] = None
    outputs: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)  # the CLI's "result" event

    def fields(self) -> dict:
        values = {"state": self.state, "error": self.error}
        if self.state != "queued":
            values["finished"] = time.time()
        if self.state == "done":
            values.update(progress=1.0, eta_s=0.0, outputs=self.outputs)
        return values


class JobProgress:
    """The job's progress from the CLI's events: per segment (state, stage, fraction), per
    stage (total seconds), overall 0-1 and an ETA from the pace of segments rendered (cached
    ones are instant and would make it lie)."""

    def __init__(self):
        self.segments: list[dict] = []
        self.stages: dict[str, dict] = {}
        self.order: list[str] = []
        self.failovers = 0
        self.started = time.time()
        self.render_started: Optional[float] = None
        self.finished = False

    def feed(self, event: dict) -> bool:
        """Take one event; True when it is worth telling the store at once."""
        kind, index = event.get("event"), event.get("segment")
        segment = self.segments[index] if isinstance(index, int) and 0 <= index < len(self.segments) else None
        if kind == "plan":
            self.order = list(event.get("stages", []))
            self.segments = [{"index": i, "state": "pending", "stage": None, "progress": 0.0, "stages_done": 0}
                             for i in range(int(event.get("segments", 0)))]
            self.stages = {name: {"name": name, "seconds": 0.0, "runs": 0} for name in self.order}
            return True
        if kind == "segment_cached" and segment is not None:
            segment.update(state="cached", stage=None, progress=1.0)
            return True
        if kind == "segment_start" and segment is not None:
            if self.render_started is None:
                self.render_started = time.time()
            segment.update(state="running", stage=None, progress=0.0, stages_done=0)
            return True
        if kind == "segment_done" and segment is not None:
            segment.update(state="done", stage=None, progress=1.0)
            return True
        if kind == "stage" and segment is not None:
            segment["stage"] = event.get("stage")
            self._segment_fraction(segment, 0.0)
        elif kind == "progress" and segment is not None:
            try:
                fraction = float(event["value"]) / max(float(event["max"]), 1e-9)
            except (KeyError, TypeError, ValueError):
                fraction = 0.0
            self._segment_fraction(segment, fraction)
        elif kind == "stage_end":
            stage = self.stages.setdefault(event.get("stage"), {"name": event.get("stage"), "seconds": 0.0, "runs": 0})
            stage["seconds"] = round(stage["seconds"] + float(event.get("seconds") or 0.0), 4)
            stage["runs"] += 1
            if segment is not None:
                segment["stages_done"] += 1
                self._segment_fraction(segment, 0.0)
        elif kind == "failover":
            self.failovers += 1
            if segment is not None:
                segment.update(state="pending", stage=None, progress=0.0, stages_done=0)
            return True
        elif kind == "result":
            self.finished = True
            return True
        return False

    def _segment_fraction(self, segment: dict, within_stage: float) -> None:
        stages = max(len(self.order), 1)
        fraction = (min(segment["stages_done"], stages) + min(max(within_stage, 0.0), 1.0)) / stages
        segment["progress"] = round(max(segment["progress"], min(fraction, 0.99)), 4)

    @property
    def progress(self) -> float:
        if self.finished:
            return 1.0
        if not self.segments:
            return 0.0
        return round(RENDER_SHARE * sum(s["progress"] for s in self.segments) / len(self.segments), 4)

    def eta_s(self) -> Optional[float]:
        """Seconds left, from the pace of the segments rendered in this run; None before any."""
        if self.finished:
            return 0.0
        rendered = sum(s["progress"] for s in self.segments if s["state"] in ("running", "done"))
        if self.render_started is None or rendered < 0.05:
            return None
        rate = rendered / max(time.time() - self.render_started, 1e-6)  # segments a second
        left = sum(1.0 - s["progress"] for s in self.segments)
        return round(left / rate + (1 - RENDER_SHARE) * len(self.segments) / rate, 1)

    def detail(self) -> dict:
        return {"segments": [{k: v for k, v in s.items() if k != "stages_done"} for s in self.segments],
                "stages": list(self.stages.values()), "failovers": self.failovers}


class Runner:
    """Starts, follows and stops `podium generate` children for jobs.

    `observe(job_id, event)` (the metrics) sees every event; `report(**fields)` is how a run
    tells the store of its progress (throttled)."""

    def __init__(self, data_dir: Path, servers: Optional[list[str]] = None, config: Optional[Path] = None,
                 observe: Optional[Callable[[str, dict], None]] = None, env: Optional[dict] = None,
                 ollama_host: Optional[str] = None, profiles_of: Optional[Callable[[Job], Path]] = None):
        self.data_dir = Path(data_dir)
        # where a job's profile is read (its owner's folder; a worker's: the job's own copy)
        self.profiles_of = profiles_of or (lambda job: profiles_dir(self.data_dir, job.owner))
        self.cache_dir = self.data_dir / "cache"
        self.servers = list(servers or [])
        self.config = config
        self.observe = observe or (lambda job_id, event: None)
        self.env = env
        self.ollama_host = ollama_host
        self._children: dict[str, subprocess.Popen] = {}
        self._why_stopped: dict[str, str] = {}
        self._lock = threading.Lock()

    def render_request(self, job: Job) -> RenderRequest:
        """What the child renders: the job's request (validated on submission) with the paths
        of its own folder. No value of it ever becomes an option: it goes as a JSON file."""
        request, folder = job.request, job_dir(self.data_dir, job.id)
        inputs = request.get("inputs") or {}
        fields = {**(request.get("options") or {}), "mode": request.get("mode", "direct"),
                  "preset": request.get("preset", "auto"), "voice": request.get("voice") or DEFAULT_VOICE,
                  "out": str(folder / VIDEO), "cache_dir": self.cache_dir}
        if request.get("mode") == "guided":
            if request.get("topic") is not None:
                fields.update(topic=request["topic"])
            if self.ollama_host:
                fields.update(ollama_host=self.ollama_host)
        elif not inputs.get("deck"):  # a deck brings its own narration
            fields["script"] = str(folder / "inputs" / SCRIPT_TEXT)
        if request.get("profile"):
            fields["profile"] = request["profile"]  # read from profiles_of(job): see _child_env
        for name in ("image", "voice_ref", "deck", "notes"):
            if inputs.get(name):
                fields[name] = str(folder / "inputs" / Path(inputs[name]).name)  # the server's own name
        return RenderRequest.model_validate(fields)

    def command(self, job: Job) -> list[str]:
        """The `podium generate` arguments for the job: its request file (written here), and
        this runner's own flags. --yes: the length was decided at submission (schemas.py)."""
        path = self.render_request(job).to_file(job_dir(self.data_dir, job.id) / REQUEST)
        args = ["generate", f"--request={path}", "--force", "--quiet", "--progress-json", "--yes"]
        args += [f"--server={url}" for url in self.servers]
        if self.config:
            args.append(f"--config={self.config}")
        return args

    def run(self, job: Job, report: Callable[..., None]) -> Outcome:
        """Render the job; blocks until the child ends. Call it from a thread that lives as
        long as the child (Linux ends the child when the thread that started it ends)."""
        folder = job_dir(self.data_dir, job.id)
        progress = JobProgress()
        try:
            argv = [sys.executable, "-c", _BOOT, str(os.getpid()), *self.command(job)]
        except ValidationError as err:  # a job stored by an older server, which this one refuses
            return Outcome("failed", error=f"the job's request cannot be rendered: {one_line(err, 400)}")
        with open(folder / LOG, "ab") as log:
            log.write(f"--- attempt {job.attempts} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            with self._lock:
                if job.id in self._why_stopped:  # cancelled before it started
                    return Outcome(self._why_stopped.pop(job.id))
                child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, text=True, bufsize=1, cwd=folder,
                                         env=self._child_env(job), start_new_session=True)
                self._children[job.id] = child
            result: dict = {}
            last = 0.0
            try:
                for line in child.stdout:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue  # the CLI's summary line, or anything else that is not an event
                    if not isinstance(event, dict):
                        continue
                    if event.get("event") == "result":
                        result = event
                    urgent = progress.feed(event)
                    self.observe(job.id, event)
                    now = time.monotonic()
                    if urgent or now - last >= REPORT_EVERY_S:
                        last = now
                        _tell(report, job.id, progress=progress.progress, eta_s=progress.eta_s(),
                              detail={**progress.detail(), "reused": result.get("reused")})
                code = child.wait()
            finally:
                if child.poll() is None:  # this thread is being torn down: stop the child too
                    self._stop(child)
                with self._lock:
                    self._children.pop(job.id, None)
                    why = self._why_stopped.pop(job.id, None)
        if why is not None:
            return Outcome(why)
        if code == 0:
            return Outcome("done", outputs={key: name for key, name in OUTPUTS.items()
                                            if (folder / name).is_file()}, result=result)
        return Outcome("failed", error=self._private(self._error(folder / LOG, code), job.id))

    def cancel(self, job_id: str, why: str = "cancelled") -> bool:
        """Stop the job's child (SIGTERM: the CLI cleans up); the run then ends as `why`
        ("cancelled", or "queued" to run it again later). False if none runs for it."""
        with self._lock:
            self._why_stopped[job_id] = why
            child = self._children.get(job_id)
        if child is None:
            return False
        threading.Thread(target=self._stop, args=(child,), daemon=True).start()
        return True

    def stop_all(self, why: str = "queued") -> None:
        """Every child stopped (a server shutdown): their jobs end as `why`, to run again."""
        with self._lock:
            running = list(self._children.items())
            for job_id, _ in running:
                self._why_stopped[job_id] = why
        threads = [threading.Thread(target=self._stop, args=(c,), daemon=True) for _, c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(STOP_GRACE_S + 5)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._children)

    @staticmethod
    def _stop(child: subprocess.Popen) -> None:
        try:
            child.send_signal(signal.SIGTERM)
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        except ProcessLookupError:
            pass

    def _child_env(self, job: Job) -> dict:
        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        env["PODIUM_PROFILES_DIR"] = str(self.profiles_of(job))  # its owner's profiles, no one else's
        # the orchestrator importable in the child as it is here (a source checkout too)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        return env

    def _private(self, message: str, job_id: str) -> str:
        """The error as a client may see it: the server's own folders named, not spelled out
        (a client has no business knowing where the data lives)."""
        folders = {job_dir(self.data_dir, job_id): "<job folder>", self.cache_dir: "<segment cache>",
                   self.data_dir: "<data folder>"}
        for folder, name in folders.items():  # the longest first: a job folder is inside the data
            for spelled in {str(folder), str(Path(folder).resolve())}:
                message = message.replace(spelled + os.sep, name + os.sep).replace(spelled, name)
        return message

    @staticmethod
    def _error(log: Path, code: int) -> str:
        """The CLI's own `error: ...` line of this attempt, else its last words, else the code."""
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = ""
        attempt = text.rsplit("--- attempt ", 1)[-1].splitlines()[1:]
        lines = [line.strip() for line in attempt if line.strip()]
        errors = [line[len("error: "):] for line in lines if line.startswith("error: ")]
        if errors:
            return one_line(errors[-1], 1000)
        if code < 0:
            return f"the render was stopped by {signal.Signals(-code).name}"
        tail = one_line(lines[-1], 400) if lines else ""
        return f"podium generate ended with exit code {code}" + (f": {tail}" if tail else "")
