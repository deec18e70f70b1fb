"""The HTTP app of `podium serve` (FastAPI): the job API, /metrics and the page.

Paths clients and dashboards rely on:
  POST   /api/jobs                 submit (JSON, or multipart with `image` / `voice_ref`): 201 + the job
  GET    /api/jobs                 list, newest first (?state=, ?limit=, ?offset=)
  GET    /api/jobs/{id}            state, progress 0-1, stages, segments, eta_s, error when failed
  GET    /api/jobs/{id}/video      the MP4 once done;  GET /api/jobs/{id}/subtitles: its .srt (?format=ass: the .ass)
  DELETE /api/jobs/{id}            queued or running: cancel it (202, the job); finished: delete
                                   it and its files (204)
  POST   /api/profiles             a reusable portrait, voice sample and consent (profiles_api.py);
                                   a job names one with `profile`
  GET    /metrics                  Prometheus;  GET /: the page;  GET /openapi.json: the schema
A bad request is a 4xx whose JSON names the field: {"detail": "options.fps: ...", "field": "options.fps"}.
With users (`podium serve users add`) or a --token, /api and /metrics need `Authorization:
Bearer TOKEN`, or the page's session cookie (POST /api/session). Each user sees only its own jobs
(admins: all); another's answers 404. Users, sessions, the audit trail: users_api.py.
"""
from __future__ import annotations

import contextlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from orchestrator.service import __doc__ as SERVICE_DOC
from orchestrator.service import jobs_api, page, profiles_api, users_api
from orchestrator.service.broker import BrokerUnavailable
from orchestrator.service.deps import SESSION_COOKIE, Unauthorized
from orchestrator.service.guard import BrowserGuard, served_names
from orchestrator.service.quotas import OverLimit
from orchestrator.service.schemas import JobRequest, RequestError, preset_names, validation_error, voice_ids
from orchestrator.service.state import Service, Settings
from orchestrator.service.store import StoreUnavailable

__all__ = ["Settings", "create_app"]


def create_app(settings: Settings) -> FastAPI:
    """The app: routers per resource (jobs, workers with a broker, the page), the settings one
    object on app.state, the Service there once the lifespan has started it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        service = app.state.service = Service(settings)
        service.queue.start()
        try:
            yield
        finally:
            service.queue.stop()
            service.store.close()
            service.users.close()

    app = FastAPI(title="Podium", version="1", description=SERVICE_DOC, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # their pages load scripts from a CDN: nothing leaves
    app.state.settings = settings
    app.add_middleware(BrowserGuard, names=served_names(settings.host, settings.allowed_hosts, settings.public_url),
                       token=bool(settings.token))
    _add_error_handlers(app)
    app.include_router(jobs_api.router)
    app.include_router(users_api.router)
    app.include_router(profiles_api.router)
    if settings.broker:
        from orchestrator.service import worker_api

        app.include_router(worker_api.router)  # what `podium worker` processes call
    app.include_router(page.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")

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


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal one JSON line: {"detail": "FIELD: what is wrong", "field": FIELD}."""

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, err: RequestError):
        headers = {"Retry-After": str(err.retry_after)} if isinstance(err, OverLimit) else None
        return JSONResponse({"detail": str(err), "field": err.field}, status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, err: RequestValidationError):
        problem = validation_error(err.errors(), skip=1)  # ("query", "limit") -> limit
        return JSONResponse({"detail": str(problem), "field": problem.field}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    @app.exception_handler(BrokerUnavailable)
    async def _unavailable(_request: Request, err: Exception):
        return JSONResponse({"detail": f"the server cannot take this now: {err}", "field": None},
                            status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(Unauthorized)
    async def _unauthorized(_request: Request, err: Unauthorized):
        field = str(err).split(":")[0]
        answer = JSONResponse({"detail": str(err), "field": field}, status_code=401,
                              headers={"WWW-Authenticate": "Bearer"})
        if err.expired:
            answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return answer
