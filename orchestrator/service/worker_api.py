"""The API `podium worker` processes use (with a broker): claim a job, read its inputs, report
progress, upload its outputs, finish or give it back. The page and clients never need these.

Every call after the claim carries the attempt number the claim gave; a call from an older
attempt (a worker taken for dead whose job another worker has claimed since) gets 409 and
stops, so only one run's progress and one run's files make the job. Files are named by the
server (the job's own inputs folder, the fixed output names), never by a request value.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Optional

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from podium.errors import one_line
from podium.files import publish, temp_path

from .runner import OUTPUTS, job_dir
from .schemas import RequestError, job_view
from .store import FINISHED


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worker: str = Field(..., min_length=1, max_length=200)


class Attempt(Claim):
    attempt: int = Field(..., ge=1)


class Event(BaseModel):
    """A render event /metrics counts (orchestrator/progress_json.py names them)."""
    event: str = Field(..., pattern="^(stage_end|segment_done|segment_cached|failover)$")
    stage: Optional[str] = Field(None, max_length=200)
    seconds: Optional[float] = Field(None, ge=0)
    instance: Optional[str] = Field(None, max_length=200)


class Progress(Attempt):
    progress: float = Field(0.0, ge=0, le=1)
    eta_s: Optional[float] = None
    detail: dict = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list, max_length=1000)


class Finish(Attempt):
    state: str = Field(..., pattern="^(done|failed)$")
    error: Optional[str] = Field(None, max_length=4000)
    result: dict = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list, max_length=1000)


def _observe(svc, job_id: str, events: list[Event]) -> None:
    for event in events:
        svc.metrics.observe(job_id, event.model_dump(exclude_none=True))


def add_worker_routes(app: FastAPI, service: Callable, guard: list) -> None:
    """Mount the worker calls on `app`; `service()` is the running Service, `guard` its auth."""
    tags = ["workers"]

    def held(job_id: str, body: Attempt):
        """The job, if it is running under this attempt; else 409 saying why."""
        job = service().job(job_id)
        if job.state != "running":
            raise RequestError("state", f"the job is {job.state}", 409)
        if body.attempt != job.attempts:
            raise RequestError("attempt", f"superseded: the job was claimed again (attempt {job.attempts} "
                                          f"by {job.detail.get('worker', 'another worker')})", 409)
        return job

    @app.post("/api/jobs/{id}/claim", dependencies=guard, tags=tags,
              summary="A worker takes the job: its request and the names of its input files")
    def claim(id: str, body: Claim):  # noqa: A002
        svc = service()
        job = svc.job(id)
        if job.state in FINISHED:
            raise RequestError("state", f"the job is {job.state}", 409)
        detail = {k: v for k, v in job.detail.items() if k not in ("worker", "attempt")}
        attempt = job.attempts + 1
        if not svc.store.update(job.id, only_if=("queued", "running"), state="running", started=time.time(),
                                attempts=attempt, error=None,
                                detail={**detail, "worker": body.worker, "attempt": attempt}):
            raise RequestError("state", f"the job is {svc.job(id).state}", 409)
        inputs = job_dir(svc.settings.data_dir, job.id) / "inputs"
        names = sorted(p.name for p in inputs.iterdir() if p.is_file()) if inputs.is_dir() else []
        return {"job": svc.job(id).as_dict(), "inputs": names}

    @app.get("/api/jobs/{id}/inputs/{name}", dependencies=guard, tags=tags, response_class=FileResponse,
             summary="One input file of the job (a name the claim listed)")
    def get_input(id: str, name: str):  # noqa: A002
        svc = service()
        job = svc.job(id)
        inputs = job_dir(svc.settings.data_dir, job.id) / "inputs"
        names = set(os.listdir(inputs)) if inputs.is_dir() else set()
        if name not in names or not (inputs / name).is_file():  # only the folder's own entries
            raise RequestError("name", f"the job has no input {one_line(name, 80)!r}", 404)
        return FileResponse(inputs / name, media_type="application/octet-stream")

    @app.post("/api/jobs/{id}/progress", dependencies=guard, tags=tags,
              summary="A worker's progress; 409 tells it to stop (cancelled, or claimed again)")
    def progress(id: str, body: Progress):  # noqa: A002
        svc = service()
        job = held(id, body)
        detail = {**body.detail, "worker": body.worker, "attempt": body.attempt}
        if not svc.store.update(job.id, only_if=("running",), progress=body.progress, eta_s=body.eta_s,
                                detail=detail):
            raise RequestError("state", f"the job is {svc.job(id).state}", 409)
        _observe(svc, job.id, body.events)
        return {"state": "running"}

    @app.put("/api/jobs/{id}/outputs/{key}", dependencies=guard, tags=tags,
             summary="Upload one output (video, subtitles, script_json, script_md) as the raw body")
    async def put_output(id: str, key: str, request: Request, attempt: int = Query(..., ge=1),  # noqa: A002
                         worker: str = Query(..., min_length=1, max_length=200)):
        svc = service()
        if key not in OUTPUTS:
            raise RequestError("key", f"unknown output {one_line(key, 40)!r}: one of {', '.join(OUTPUTS)}", 404)
        job = held(id, Attempt(worker=worker, attempt=attempt))
        target = job_dir(svc.settings.data_dir, job.id) / OUTPUTS[key]
        tmp = temp_path(target)
        try:
            with open(tmp, "wb") as out:
                async for chunk in request.stream():
                    out.write(chunk)
            publish(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return {"key": key, "bytes": target.stat().st_size}

    @app.post("/api/jobs/{id}/finish", dependencies=guard, tags=tags,
              summary="A worker's run ended: done (outputs uploaded) or failed (with the error)")
    def finish(id: str, body: Finish):  # noqa: A002
        svc = service()
        job = held(id, body)
        folder = job_dir(svc.settings.data_dir, job.id)
        outputs = {key: name for key, name in OUTPUTS.items() if (folder / name).is_file()}
        fields = {"state": body.state, "finished": time.time(), "error": body.error}
        if body.state == "done":
            if "video" not in outputs:
                raise RequestError("state", "done, but no video was uploaded: PUT outputs/video first", 422)
            fields.update(progress=1.0, eta_s=0.0, outputs=outputs,
                          detail={**job.detail, "reused": body.result.get("reused")})
        elif not body.error:
            fields["error"] = "the render failed (the worker gave no reason)"
        if not svc.store.update(job.id, only_if=("running",), **fields):
            raise RequestError("state", f"the job is {svc.job(id).state}", 409)
        _observe(svc, job.id, body.events)
        finished = svc.job(id)
        svc.metrics.job_finished(body.state, finished.finished - finished.started if finished.started else None)
        return job_view(finished)

    @app.post("/api/jobs/{id}/release", dependencies=guard, tags=tags,
              summary="A stopping worker gives the job back: queued again")
    def release(id: str, body: Attempt):  # noqa: A002
        svc = service()
        job = held(id, body)
        svc.store.update(job.id, only_if=("running",), state="queued")
        return job_view(svc.job(id))

