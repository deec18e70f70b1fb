"""The API `podium worker` processes use (with a broker): claim a job, read its inputs, report
progress, upload its outputs, finish or give it back. The page and clients never need these.

Every call after the claim carries the attempt number the claim gave; a call from an older
attempt (a worker taken for dead whose job another worker has claimed since) gets 409 and
stops, so only one run's progress and one run's files make the job. Files are named by the
server (the job's own inputs folder, the fixed output names), never by a request value.
Only worker tokens (and admins) may call them; a worker token may call nothing else.
"""
from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from podium.errors import one_line
from podium.files import publish, temp_path

from orchestrator.service.deps import Svc, WorkerRole
from orchestrator.service.runner import OUTPUTS, job_dir, profiles_dir
from orchestrator.service.schemas import RequestError, SegmentView, StageView, job_view
from orchestrator.service.store import FINISHED

MAX_TEXT_OUTPUT = 20_000_000  # subtitles and the script (JSON, Markdown): far more than any needs
CHUNK = 1 << 20


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")
    worker: str = Field(..., min_length=1, max_length=200)


class Attempt(Claim):
    attempt: int = Field(..., ge=1)


class Event(BaseModel):
    """A render event /metrics counts (orchestrator/render/progress_json.py names them)."""
    event: str = Field(..., pattern="^(stage_end|segment_done|segment_cached|failover)$")
    stage: Optional[str] = Field(None, max_length=200)
    seconds: Optional[float] = Field(None, ge=0)
    instance: Optional[str] = Field(None, max_length=200)


class Detail(BaseModel):
    """What a run reports of its segments and stages: the shapes GET /api/jobs answers with,
    checked here so that no worker can store a job the API cannot show."""
    model_config = ConfigDict(extra="forbid")
    segments: list[SegmentView] = Field(default_factory=list, max_length=10_000)
    stages: list[StageView] = Field(default_factory=list, max_length=1000)
    failovers: int = Field(0, ge=0)
    reused: Optional[int] = Field(None, ge=0)


class Result(BaseModel):
    """The CLI's result event as a worker passes it on: only `reused` is kept."""
    reused: Optional[int] = Field(None, ge=0)


class Progress(Attempt):
    progress: float = Field(0.0, ge=0, le=1)
    eta_s: Optional[float] = Field(None, ge=0, le=1e7)
    detail: Detail = Field(default_factory=Detail)
    events: list[Event] = Field(default_factory=list, max_length=1000)


class Finish(Attempt):
    state: str = Field(..., pattern="^(done|failed)$")
    error: Optional[str] = Field(None, max_length=4000)
    result: Result = Field(default_factory=Result)
    events: list[Event] = Field(default_factory=list, max_length=1000)


def _observe(svc, job_id: str, events: list[Event]) -> None:
    for event in events:
        svc.metrics.observe(job_id, event.model_dump(exclude_none=True))


def _worker(_user: WorkerRole) -> None:
    """Only workers' tokens (and admins) claim, report and upload."""


router = APIRouter(prefix="/api/jobs", tags=["workers"], dependencies=[Depends(_worker)])


def held(svc, job_id: str, body: Attempt):
    """The job, if it is running under this attempt; else 409 saying why."""
    job = svc.job(job_id)
    if job.state != "running":
        raise RequestError("state", f"the job is {job.state}", 409)
    if body.attempt != job.attempts:
        raise RequestError("attempt", f"superseded: the job was claimed again (attempt {job.attempts} "
                                      f"by {job.detail.get('worker', 'another worker')})", 409)
    return job


@router.post("/{id}/claim",
             summary="A worker takes the job: its request and the names of its input files")
def claim(id: str, body: Claim, svc: Svc):  # noqa: A002
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
    answer = {"job": svc.job(id).as_dict(), "inputs": names}
    if job.request.get("profile"):
        answer["profile"] = _profile_archive(svc, svc.job(id))
    return answer


PROFILE_ARCHIVE = "profile.zip"  # beside the job's inputs: what GET /api/jobs/{id}/profile sends


def _profile_archive(svc, job) -> dict:
    """The job owner's profile as one archive in the job's folder (profile export: each file
    with its sha256 in the manifest), and the archive's own sha256 for the worker to check. A
    profile gone since the submission fails the job, with why."""
    from orchestrator.profiles import profile as profiles

    name = job.request["profile"]
    target = job_dir(svc.settings.data_dir, job.id) / PROFILE_ARCHIVE
    try:
        with profiles.stored_in(profiles_dir(svc.settings.data_dir, job.owner)):
            profiles.export(name, target, force=True)
    except profiles.ProfileError as err:
        error = f"the job's profile cannot be sent to the worker: {one_line(str(err), 300)}"
        svc.store.update(job.id, only_if=("running",), state="failed", finished=time.time(), error=error)
        svc.job_ended(job.id, "failed")
        raise RequestError("state", error, 409) from None
    return {"name": name, "sha256": profiles.sha256(target), "bytes": target.stat().st_size,
            "link": f"/api/jobs/{job.id}/profile"}


@router.get("/{id}/profile", response_class=FileResponse,
            summary="The job's profile as an archive (the claim gives its sha256)")
def get_profile(id: str, svc: Svc):  # noqa: A002
    job = svc.job(id)
    archive = job_dir(svc.settings.data_dir, job.id) / PROFILE_ARCHIVE
    if not job.request.get("profile") or not archive.is_file():
        raise RequestError("id", "the job has no profile archive (it is made when the job is claimed)", 404)
    return FileResponse(archive, media_type="application/zip")


@router.get("/{id}/inputs/{name}", response_class=FileResponse,
            summary="One input file of the job (a name the claim listed)")
def get_input(id: str, name: str, svc: Svc):  # noqa: A002
    job = svc.job(id)
    inputs = job_dir(svc.settings.data_dir, job.id) / "inputs"
    names = set(os.listdir(inputs)) if inputs.is_dir() else set()
    if name not in names or not (inputs / name).is_file():  # only the folder's own entries
        raise RequestError("name", f"the job has no input {one_line(name, 80)!r}", 404)
    return FileResponse(inputs / name, media_type="application/octet-stream")


@router.post("/{id}/progress",
             summary="A worker's progress; 409 tells it to stop (cancelled, or claimed again)")
def progress(id: str, body: Progress, svc: Svc):  # noqa: A002
    job = held(svc, id, body)
    detail = {**body.detail.model_dump(), "worker": body.worker, "attempt": body.attempt}
    if not svc.store.update(job.id, only_if=("running",), progress=body.progress, eta_s=body.eta_s,
                            detail=detail):
        raise RequestError("state", f"the job is {svc.job(id).state}", 409)
    _observe(svc, job.id, body.events)
    return {"state": "running"}


@router.put("/{id}/outputs/{key}",
            summary="Upload one output (video, subtitles, captions, script_json, script_md, notes) as the raw body")
async def put_output(id: str, key: str, request: Request, svc: Svc, attempt: int = Query(..., ge=1),  # noqa: A002
                     worker: str = Query(..., min_length=1, max_length=200)):
    if key not in OUTPUTS:
        raise RequestError("key", f"unknown output {one_line(key, 40)!r}: one of {', '.join(OUTPUTS)}", 404)
    job = await run_in_threadpool(held, svc, id, Attempt(worker=worker, attempt=attempt))  # SQLite
    limit = int(svc.settings.max_output_mb * 1e6) if key == "video" else MAX_TEXT_OUTPUT
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise RequestError("body", f"the {key} is {int(length) / 1e6:.1f} MB; at most {limit / 1e6:g} MB "
                                   "is taken (podium serve --max-output-mb)", 413)
    target = job_dir(svc.settings.data_dir, job.id) / OUTPUTS[key]
    tmp = temp_path(target)
    try:
        await _receive(request, tmp, limit, key)
        await run_in_threadpool(_keep, tmp, target, key)
    finally:
        tmp.unlink(missing_ok=True)
    return {"key": key, "bytes": target.stat().st_size}


def _keep(received: Path, target: Path, key: str) -> None:
    """A received output under its own name, once it is what it says (a video: checked)."""
    if key == "video":
        _check_video(received)
    publish(received, target)


@router.post("/{id}/finish",
             summary="A worker's run ended: done (outputs uploaded) or failed (with the error)")
def finish(id: str, body: Finish, svc: Svc):  # noqa: A002
    job = held(svc, id, body)
    folder = job_dir(svc.settings.data_dir, job.id)
    outputs = {key: name for key, name in OUTPUTS.items() if (folder / name).is_file()}
    fields = {"state": body.state, "finished": time.time(), "error": body.error}
    if body.state == "done":
        if "video" not in outputs:
            raise RequestError("state", "done, but no video was uploaded: PUT outputs/video first", 422)
        fields.update(progress=1.0, eta_s=0.0, outputs=outputs,
                      detail={**job.detail, "reused": body.result.reused})
    elif not body.error:
        fields["error"] = "the render failed (the worker gave no reason)"
    if not svc.store.update(job.id, only_if=("running",), **fields):
        raise RequestError("state", f"the job is {svc.job(id).state}", 409)
    (folder / PROFILE_ARCHIVE).unlink(missing_ok=True)  # the profile's copy goes with the run
    _observe(svc, job.id, body.events)
    svc.job_ended(job.id, body.state)
    return job_view(svc.job(id))


@router.post("/{id}/release",
             summary="A stopping worker gives the job back: queued again")
def release(id: str, body: Attempt, svc: Svc):  # noqa: A002
    job = held(svc, id, body)
    svc.store.update(job.id, only_if=("running",), state="queued")
    return job_view(svc.job(id))


async def _receive(request: Request, into: Path, limit: int, key: str) -> None:
    """The body into `into`, refused (413) past `limit` bytes, 507 when the disk is full."""
    size = 0
    try:
        out = await run_in_threadpool(open, into, "wb")  # the disk's work off the event loop
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError("body", f"the {key} is larger than the {limit / 1e6:g} MB taken "
                                               "(podium serve --max-output-mb)", 413)
                await run_in_threadpool(out.write, chunk)
        finally:
            await run_in_threadpool(out.close)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise RequestError("body", "the server's disk is full: the output was not taken", 507) from None
        raise


def _check_video(path: Path) -> None:
    """An MP4 (ISO base media) that ffmpeg reads to the end with a video and an audio stream."""
    from podium.engines.ffmpeg_exe import find_ffmpeg

    with open(path, "rb") as handle:
        head = handle.read(12)
    if head[4:8] != b"ftyp":
        raise RequestError("body", "the video is not an MP4 file", 422)
    check = subprocess.run([find_ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0",
                            "-map", "0:a:0", "-c", "copy", "-f", "null", "-"], capture_output=True, text=True)
    if check.returncode:
        why = one_line(check.stderr.replace(str(path), "video"), 200) or f"ffmpeg exit {check.returncode}"
        raise RequestError("body", f"the video is not an MP4 with a video and an audio stream ({why})", 422)
