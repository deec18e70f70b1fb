"""The HTTP app of `podium serve` (FastAPI): the job API, /metrics and the page.

Paths clients and dashboards rely on:
  POST   /api/jobs                 submit (JSON, or multipart with `image` / `voice_ref`): 201 + the job
  GET    /api/jobs                 list, newest first (?state=, ?limit=, ?offset=)
  GET    /api/jobs/{id}            state, progress 0-1, stages, segments, eta_s, error when failed
  GET    /api/jobs/{id}/video      the MP4 once done;  GET /api/jobs/{id}/subtitles: its .srt
  DELETE /api/jobs/{id}            queued or running: cancel it (202, the job); finished: delete
                                   it and its files (204)
  GET    /metrics                  Prometheus;  GET /: the page;  GET /openapi.json: the schema
A bad request is a 4xx whose JSON names the field: {"detail": "options.fps: ...", "field": "options.fps"}.
With a token, /api and /metrics need `Authorization: Bearer TOKEN` (GET also takes the
`podium_token` cookie, so the page's <video> can play).
"""
from __future__ import annotations

import contextlib
import errno
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from podium.files import atomic_write_text

from . import __doc__ as SERVICE_DOC
from .broker import BrokerUnavailable
from .guard import BrowserGuard, served_names
from .metrics import Metrics
from .queue import make_queue
from .runner import SCRIPT_TEXT, SUBTITLES, VIDEO, Runner, job_dir
from .schemas import (JobList, JobRequest, JobView, RequestError, job_view, preset_names,
                      validation_error, voice_ids)
from .store import ACTIVE, STATES, JobStore, StoreUnavailable, new_id
from .uploads import UPLOADS, remove_folder, store_upload

STATIC = Path(__file__).resolve().parent / "static"
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_JSON_BYTES = 4 << 20
FORM_FIELDS = ("mode", "text", "topic", "preset", "voice", "options")
MAX_OFFSET = 2**62  # SQLite's integers end at 2**63
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


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
    broker: Optional[str] = None  # a Redis URL: jobs go to `podium worker` processes
    public_url: Optional[str] = None  # where workers reach this server (default http://host:port)
    allowed_hosts: list[str] = field(default_factory=list)  # Host names taken besides the served ones
    max_output_mb: float = 4000.0  # with --broker: the largest video a worker may upload
    reconcile_s: float = 30.0  # with --broker: how often the store's queued jobs are checked against Redis
    stale_s: float = 300.0  # with --broker: a running job silent this long and lost by Redis runs again
    store_timeout_s: float = 30.0  # how long a store call waits for a database another holds

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)


class Service:
    """What the routes share: the store, the runner, the queue, the metrics."""

    def __init__(self, settings: Settings):
        self.settings = settings
        data = Path(settings.data_dir)
        (data / "jobs").mkdir(parents=True, exist_ok=True)
        self.store = JobStore(data / "jobs.sqlite3", busy_timeout_s=settings.store_timeout_s)
        running = (lambda: self.store.counts()["running"]) if settings.broker else (lambda: len(self.runner.running()))
        self.metrics = Metrics(self.store.counts, lambda: self.queue.depth(), running, settings.servers)
        self.runner = Runner(data, settings.servers, settings.config, observe=self.metrics.observe,
                             ollama_host=settings.ollama_host)
        self.queue = make_queue(self.store, self.runner, settings.workers, on_finished=self._finished,
                                broker=settings.broker, api=settings.public_url or _own_url(settings),
                                reconcile_s=settings.reconcile_s, stale_s=settings.stale_s)

    def _finished(self, job_id: str, outcome) -> None:
        job = self.store.get(job_id)
        seconds = job.finished - job.started if job and job.finished and job.started else None
        self.metrics.job_finished(outcome.state, seconds)

    def job(self, job_id: str):
        if not JOB_ID.match(job_id):
            raise RequestError("id", f"{job_id[:40]!r} is not a job id (32 hexadecimal digits)", 422)
        job = self.store.get(job_id)
        if job is None:
            raise RequestError("id", f"no job with id {job_id}", 404)
        return job


def create_app(settings: Settings) -> FastAPI:
    service_holder: dict[str, Service] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service = service_holder["service"] = Service(settings)
        service.queue.start()
        app.state.service = service
        try:
            yield
        finally:
            service.queue.stop()
            service.store.close()

    app = FastAPI(title="Podium", version="1", description=SERVICE_DOC, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # their pages load scripts from a CDN: nothing leaves
    app.add_middleware(BrowserGuard, names=served_names(settings.host, settings.allowed_hosts, settings.public_url),
                       token=bool(settings.token))

    def service() -> Service:
        return service_holder["service"]

    def authorized(request: Request) -> None:
        if not settings.token:
            return
        given = request.headers.get("authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else None
        if token is None and request.method in ("GET", "HEAD"):
            token = request.cookies.get("podium_token")
        if token is None or not secrets.compare_digest(token.encode(), settings.token.encode()):
            raise _Unauthorized()

    guard = [Depends(authorized)]
    if settings.broker:
        from .worker_api import add_worker_routes

        add_worker_routes(app, service, guard)  # what `podium worker` processes call

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, err: RequestError):
        return JSONResponse({"detail": str(err), "field": err.field}, status_code=err.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError):
        problem = validation_error(err.errors(), skip=1)  # ("query", "limit") -> limit
        return JSONResponse({"detail": str(problem), "field": problem.field}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(BrokerUnavailable)
    async def _unavailable(_request: Request, err: Exception):
        return JSONResponse({"detail": f"the server cannot take this now: {err}", "field": None},
                            status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(_Unauthorized)
    async def _unauthorized(_request: Request, _err: _Unauthorized):
        return JSONResponse({"detail": "Authorization: a Bearer token is required (the one `podium serve "
                                       "--token` was given)", "field": "Authorization"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.post("/api/jobs", status_code=201, dependencies=guard, openapi_extra=_submit_openapi(),
              summary="Submit a job", response_model=JobView,
              responses={201: {"description": "queued; the job, its URL in Location"}})
    async def submit(request: Request):
        """JSON (`JobRequest`), or multipart/form-data with the same fields (`options` as a JSON
        string) and the files `image` (PNG/JPEG/WebP) and `voice_ref` (WAV/FLAC/MP3/Ogg/M4A)."""
        svc = service()
        job_request, files = await _parse_submission(request, svc.settings)
        job_request.check()
        job = await run_in_threadpool(_create_job, svc, job_request, files)  # disk and SQLite
        try:
            await run_in_threadpool(svc.queue.submit, job.id)
        except BrokerUnavailable:  # not taken: nothing of it stays (a client tries again)
            await run_in_threadpool(_remove_job, svc, job.id)
            raise
        svc.metrics.submitted.inc()
        return JSONResponse(job_view(job), status_code=201, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs", dependencies=guard, summary="List jobs, newest first", response_model=JobList)
    def list_jobs(state: Optional[str] = None, limit: int = 100, offset: int = 0):
        if state is not None and state not in STATES:
            raise RequestError("state", f"unknown state {state!r}: one of {', '.join(STATES)}")
        if not 1 <= limit <= 1000:
            raise RequestError("limit", "must be from 1 to 1000")
        if not 0 <= offset <= MAX_OFFSET:
            raise RequestError("offset", f"must be from 0 to {MAX_OFFSET}")
        svc = service()
        return {"jobs": [job_view(j, full=False) for j in svc.store.list(state, limit, offset)],
                "counts": svc.store.counts()}

    @app.get("/api/jobs/{id}", dependencies=guard, response_model=JobView,
             summary="A job: state, progress, stages, segments, ETA")
    def get_job(id: str):  # noqa: A002 - the path says {id}
        return job_view(service().job(id))

    @app.get("/api/jobs/{id}/video", dependencies=guard, summary="The finished MP4",
             response_class=FileResponse)
    def get_video(id: str):  # noqa: A002
        return _output(service(), id, "video", VIDEO, "video/mp4")

    @app.get("/api/jobs/{id}/subtitles", dependencies=guard, summary="The finished subtitles (SRT)",
             response_class=FileResponse)
    def get_subtitles(id: str):  # noqa: A002
        return _output(service(), id, "subtitles", SUBTITLES, "application/x-subrip")

    @app.delete("/api/jobs/{id}", dependencies=guard, status_code=204,
                summary="Cancel a queued or running job (202); delete a finished one (204)",
                responses={202: {"description": "cancelled; the job as it now is", "model": JobView},
                           204: {"description": "deleted with its files"}})
    def delete_job(id: str):  # noqa: A002
        svc = service()
        job = svc.job(id)
        if job.state in ACTIVE:
            if not svc.queue.cancel(job.id):
                job = svc.job(id)  # it finished meanwhile: say so as it is
                return JSONResponse(job_view(job), status_code=409)
            if job.state == "queued":
                svc.metrics.job_finished("cancelled", None)
            return JSONResponse(job_view(svc.job(id)), status_code=202)
        if job.id in svc.runner.running():
            raise RequestError("id", "the job is still stopping; delete it again in a moment", 409)
        svc.store.delete(job.id)
        remove_folder(job_dir(svc.settings.data_dir, job.id))
        return Response(status_code=204)

    @app.get("/metrics", dependencies=guard, summary="Prometheus metrics", response_class=Response)
    def metrics():
        return Response(service().metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def openapi():
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            request_schema = JobRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["JobRequest"] = request_schema
            request_schema["properties"]["preset"]["enum"] = list(preset_names())
            request_schema["properties"]["voice"]["enum"] = list(voice_ids())
            schema["info"]["x-upload-limit-bytes"] = settings.max_upload_bytes
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


class _Unauthorized(Exception):
    pass


def _own_url(settings: Settings) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}"


def _remove_job(svc: Service, job_id: str) -> None:
    try:
        svc.store.delete(job_id)
    finally:
        remove_folder(job_dir(svc.settings.data_dir, job_id))


def _create_job(svc: Service, job_request: JobRequest, files: dict[str, UploadFile]):
    """The job's folder with its inputs, then its row: a worker never sees a job without its
    files, and a refused upload leaves nothing behind."""
    job_id = new_id()
    folder = job_dir(svc.settings.data_dir, job_id)
    inputs = folder / "inputs"
    try:
        inputs.mkdir(parents=True)
        if job_request.mode == "direct":
            atomic_write_text(inputs / SCRIPT_TEXT, job_request.text)
        stored = {name: store_upload(name, upload.file, inputs, svc.settings.max_upload_bytes)
                  for name, upload in files.items()}
        record = {**job_request.model_dump(mode="json", exclude_none=True), "inputs": stored}
        return svc.store.create(record, job_id)
    except OSError as err:
        remove_folder(folder)
        if err.errno in DISK_FULL:
            raise RequestError("body", "the server's disk is full: the job was not taken (try again "
                                       "once space is freed)", 507) from None
        raise
    except BaseException:
        remove_folder(folder)
        raise


def _output(svc: Service, job_id: str, key: str, name: str, media_type: str):
    job = svc.job(job_id)
    if job.state != "done":
        raise RequestError("id", f"the job is {job.state}: its {key} exists once it is done", 409)
    if key not in job.outputs:
        raise RequestError("id", f"the job has no {key}" + (" (subtitles: none)" if key == "subtitles" else ""), 404)
    path = job_dir(svc.settings.data_dir, job.id) / name
    if not path.is_file():
        raise RequestError("id", f"the job's {key} file is gone from the data folder", 410)
    return FileResponse(path, media_type=media_type, filename=f"podium-{job.id}{path.suffix}")


async def _parse_submission(request: Request, settings: Settings) -> tuple[JobRequest, dict[str, UploadFile]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if kind == "application/json":
        body = await _read_limited(request, MAX_JSON_BYTES)
        try:
            data = json.loads(body)
        except ValueError as err:
            raise RequestError("body", f"is not valid JSON ({err})", 400) from None
        if not isinstance(data, dict):
            raise RequestError("body", "must be a JSON object", 422)
        return _validated(data), {}
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        limit = len(UPLOADS) * settings.max_upload_bytes + MAX_JSON_BYTES
        if length is None:
            raise RequestError("body", "send a Content-Length with an upload", 411)
        if int(length) > limit:
            raise RequestError("body", f"the request is {int(length) / 1e6:.1f} MB; each upload may be "
                                       f"{settings.max_upload_mb:g} MB at most", 413)
        form = await request.form(max_files=len(UPLOADS), max_fields=len(FORM_FIELDS))
        data, files = {}, {}
        for name, value in form.multi_items():
            if name in UPLOADS:
                if not isinstance(value, UploadFile):
                    raise RequestError(name, "must be a file upload", 422)
                if name in files:
                    raise RequestError(name, "give one file", 422)
                files[name] = value
            elif name in FORM_FIELDS:
                if isinstance(value, UploadFile):
                    raise RequestError(name, "must be a form field, not a file", 422)
                data[name] = value
            else:
                raise RequestError(name, "is not a field this API takes", 422)
        if "options" in data:
            try:
                data["options"] = json.loads(data["options"]) if data["options"].strip() else {}
            except ValueError:
                raise RequestError("options", "must be a JSON object (as a string in the form)", 422) from None
        return _validated(data), files
    raise RequestError("body", "send JSON (application/json) or a form (multipart/form-data with "
                               "uploads, or application/x-www-form-urlencoded)", 415)


def _validated(data: dict) -> JobRequest:
    try:
        return JobRequest.model_validate(data)
    except ValidationError as err:
        raise validation_error(err.errors(include_url=False)) from None


async def _read_limited(request: Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError("body", f"is larger than the {limit >> 20} MB a JSON request may be", 413)
    return bytes(body)


def _submit_openapi() -> dict:
    upload = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["direct", "guided"]}, "text": {"type": "string"},
            "topic": {"type": "string"}, "preset": {"type": "string"}, "voice": {"type": "string"},
            "options": {"type": "string", "description": "JSON object: JobRequest.options"},
            "image": {**upload, "description": "portrait: PNG, JPEG or WebP"},
            "voice_ref": {**upload, "description": "voice to clone: WAV, FLAC, MP3, Ogg or M4A"}}}},
    }}}
