"""The job routes clients and the page use: submit, list, one job, its files, cancel or delete.
Each sees only the jobs its user may (deps.Jobs: the filter is in the store's queries); a new
job is its submitter's, admitted within the submitter's quotas (quotas.py), and audited."""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from podium.errors import one_line

from orchestrator.service.broker import BrokerUnavailable
from orchestrator.service.deps import OwnJobs, Svc, Writer
from orchestrator.service.quotas import check_submission
from orchestrator.service.runner import CAPTIONS, NOTES, SUBTITLES, VIDEO, job_dir
from orchestrator.service.schemas import JobList, JobView, RequestError, job_view
from orchestrator.service.state import Service
from orchestrator.service.store import ACTIVE, STATES
from orchestrator.service.submission import create_job, parse_submission, remove_job, submit_openapi
from orchestrator.service.uploads import remove_folder
from orchestrator.service.users import User

MAX_OFFSET = 2**62  # SQLite's integers end at 2**63
router = APIRouter(prefix="/api/jobs")


@router.post("", status_code=201, openapi_extra=submit_openapi(),
             summary="Submit a job", response_model=JobView,
             responses={201: {"description": "queued; the job, its URL in Location"}})
async def submit(request: Request, svc: Svc, user: Writer):
    """JSON (`JobRequest`), or multipart/form-data with the same fields (`options` as a JSON
    string) and the files `image` (PNG/JPEG/WebP), `voice_ref` (WAV/FLAC/MP3/Ogg/M4A), `deck`
    (PPTX/PDF: a lecture, its slide count in the job's `slides`) and `notes` (UTF-8 Markdown)."""
    length = request.headers.get("content-length", "")
    form = request.headers.get("content-type", "").startswith("multipart/")
    await run_in_threadpool(_admit, svc, user, int(length) if form and length.isdigit() else 0)  # uploads
    job_request, files = await parse_submission(request, svc.settings)
    job_request.check(files)
    job = await run_in_threadpool(_create, svc, user, job_request, files)  # disk and SQLite
    try:
        await run_in_threadpool(svc.queue.submit, job.id)
    except BrokerUnavailable:  # not taken: nothing of it stays (a client tries again)
        await run_in_threadpool(remove_job, svc, job.id)
        raise
    svc.metrics.submitted.inc()
    await run_in_threadpool(svc.users.audit, user.name, "job.create", job.id)
    return JSONResponse(job_view(job), status_code=201, headers={"Location": f"/api/jobs/{job.id}"})


def _admit(svc: Service, user: User, upload_bytes: int) -> None:
    """429 (or 403 for a role that may not submit) when the job would pass the user's limits."""
    check_submission(svc.limits_of(user), svc.store.active_of(user.id), svc.users.used(user.id), upload_bytes)


def _create(svc: Service, user: User, job_request, files):
    with svc.submitting:  # the jobs-at-once check and the new row together
        _admit(svc, user, 0)
        job = create_job(svc, job_request, files, owner=user.id)
    inputs = job_dir(svc.settings.data_dir, job.id) / "inputs"
    uploads = (job.request.get("inputs") or {}).values()  # the files sent (not the script's text)
    svc.users.record(user.id, uploaded=sum((inputs / name).stat().st_size for name in uploads))
    return job


@router.get("", summary="List jobs, newest first", response_model=JobList)
def list_jobs(jobs: OwnJobs, state: Optional[str] = None, limit: int = 100, offset: int = 0):
    if state is not None and state not in STATES:
        raise RequestError("state", f"unknown state {state!r}: one of {', '.join(STATES)}")
    if not 1 <= limit <= 1000:
        raise RequestError("limit", "must be from 1 to 1000")
    if not 0 <= offset <= MAX_OFFSET:
        raise RequestError("offset", f"must be from 0 to {MAX_OFFSET}")
    return {"jobs": [job_view(j, full=False) for j in jobs.list(state, limit, offset)],
            "counts": jobs.counts()}


@router.get("/{id}", response_model=JobView,
            summary="A job: state, progress, stages, segments, ETA")
def get_job(id: str, jobs: OwnJobs):  # noqa: A002 - the path says {id}
    return job_view(jobs.get(id))


@router.get("/{id}/video", summary="The finished MP4",
            response_class=FileResponse)
def get_video(id: str, svc: Svc, jobs: OwnJobs):  # noqa: A002
    return _output(svc, jobs.get(id), "video", VIDEO, "video/mp4")


SUBTITLE_FORMATS = {"srt": ("subtitles", SUBTITLES, "application/x-subrip"),
                    "ass": ("captions", CAPTIONS, "text/x-ssa")}  # ?format= -> (output key, file, type)


@router.get("/{id}/subtitles", summary="The finished subtitles: SRT, or the captions as drawn (ASS)",
            response_class=FileResponse)
def get_subtitles(id: str, svc: Svc, jobs: OwnJobs,  # noqa: A002
                  format: str = Query("srt", description=(  # noqa: A002 - the query says format
                      "srt: the sentence cues; ass: the captions as the video draws them (words, "
                      "karaoke and the caption style included), for players and editors"))):
    if format not in SUBTITLE_FORMATS:
        raise RequestError("format", f"must be one of {', '.join(SUBTITLE_FORMATS)}, "
                                     f"not {one_line(format, 20)!r}")
    return _output(svc, jobs.get(id), *SUBTITLE_FORMATS[format])


@router.get("/{id}/notes", summary="A guided lecture's notes the LLM wrote (Markdown, one section a slide)",
            response_class=FileResponse)
def get_notes(id: str, svc: Svc, jobs: OwnJobs):  # noqa: A002
    return _output(svc, jobs.get(id), "notes", NOTES, "text/markdown; charset=utf-8")


@router.delete("/{id}", status_code=204,
               summary="Cancel a queued or running job (202); delete a finished one (204)",
               responses={202: {"description": "cancelled; the job as it now is", "model": JobView},
                          204: {"description": "deleted with its files"}})
def delete_job(id: str, svc: Svc, jobs: OwnJobs, user: Writer):  # noqa: A002
    job = jobs.owned(id)
    if job.state in ACTIVE:
        if not svc.queue.cancel(job.id):
            job = svc.job(id)  # it finished meanwhile: say so as it is
            return JSONResponse(job_view(job), status_code=409)
        if job.state == "queued":
            svc.metrics.job_finished("cancelled", None)
        svc.users.audit(user.name, "job.cancel", job.id)
        return JSONResponse(job_view(svc.job(id)), status_code=202)
    if job.id in svc.runner.running():
        raise RequestError("id", "the job is still stopping; delete it again in a moment", 409)
    svc.store.delete(job.id)
    remove_folder(job_dir(svc.settings.data_dir, job.id))
    svc.users.audit(user.name, "job.delete", job.id)
    return Response(status_code=204)


def _output(svc: Service, job, key: str, name: str, media_type: str):
    if job.state != "done":
        raise RequestError("id", f"the job is {job.state}: its {key} exists once it is done", 409)
    if key not in job.outputs:
        raise RequestError("id", f"the job has no {key}{_why_none(job, key)}", 404)
    path = job_dir(svc.settings.data_dir, job.id) / name
    if not path.is_file():
        raise RequestError("id", f"the job's {key} file is gone from the data folder", 410)
    return FileResponse(path, media_type=media_type, filename=f"podium-{job.id}{path.suffix}")


def _why_none(job, key: str) -> str:
    """Why a done job lacks this output, in a few words."""
    if key == "captions":
        if "subtitles" in job.outputs:  # rendered before the service kept the .ass
            return " (.ass): it was rendered before they were kept; its .srt is at ?format=srt"
        return " (.ass): it was rendered with subtitles: none"
    return {"subtitles": " (subtitles: none)", "notes": " (only a guided deck job writes them)"}.get(key, "")
