"""A submitted job: the POST body (JSON or a form with uploads) read within limits and
validated, then the job's folder and row, or nothing at all."""
from __future__ import annotations

import errno

from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from podium import jsonio
from podium.files import atomic_write_text

from orchestrator.service.decks import check_deck
from orchestrator.service.profiles_api import job_profile
from orchestrator.service.runner import SCRIPT_TEXT, job_dir
from orchestrator.service.schemas import JobRequest, RequestError, validation_error
from orchestrator.service.state import Service, Settings
from orchestrator.service.store import new_id
from orchestrator.service.uploads import UPLOADS, remove_folder, store_upload

MAX_JSON_BYTES = 4 << 20
FORM_FIELDS = ("mode", "text", "topic", "preset", "voice", "profile", "options")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
UNPACKED_PER_PACKED = 10  # a PPTX may unpack to this many times the deck limit (its XML, its pictures)


def remove_job(svc: Service, job_id: str) -> None:
    try:
        svc.store.delete(job_id)
    finally:
        remove_folder(job_dir(svc.settings.data_dir, job_id))


def create_job(svc: Service, job_request: JobRequest, files: dict[str, UploadFile], owner: int = 0):
    """The job's folder with its inputs, then its row (the job `owner`'s): a worker never sees a
    job without its files, and a refused upload leaves nothing behind."""
    job_id = new_id()
    folder = job_dir(svc.settings.data_dir, job_id)
    inputs = folder / "inputs"
    try:
        consent = job_profile(svc, owner, job_request.profile, files) if job_request.profile else None
        inputs.mkdir(parents=True)
        if job_request.mode == "direct" and "deck" not in files:
            atomic_write_text(inputs / SCRIPT_TEXT, job_request.text)
        stored = {name: store_upload(name, upload.file, inputs, svc.settings.upload_limit(name))
                  for name, upload in files.items()}
        record = {**job_request.model_dump(mode="json", exclude_none=True), "inputs": stored}
        deck = check_deck(inputs, stored, {k: v.filename for k, v in files.items()}, job_request.mode,
                          UNPACKED_PER_PACKED * svc.settings.upload_limit("deck"))
        if deck is not None:
            record["deck"] = deck
        if consent is not None:
            record["consent"] = consent  # the profile's name and its consent's date, with the job
        return svc.store.create(record, job_id, owner=owner)
    except OSError as err:
        remove_folder(folder)
        if err.errno in DISK_FULL:
            raise RequestError("body", "the server's disk is full: the job was not taken (try again "
                                       "once space is freed)", 507) from None
        raise
    except BaseException:
        remove_folder(folder)
        raise


async def parse_submission(request: Request, settings: Settings) -> tuple[JobRequest, dict[str, UploadFile]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    length = request.headers.get("content-length")
    if kind == "application/json":
        body = await _read_limited(request, MAX_JSON_BYTES)
        try:
            data = jsonio.loads(body)  # bounded: deep nesting is a 400, not a 500
        except ValueError as err:  # "is not valid JSON (...)", "nests ... deep"
            raise RequestError("body", str(err), 400) from None
        if not isinstance(data, dict):
            raise RequestError("body", "must be a JSON object", 422)
        return _validated(data), {}
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        limit = sum(settings.upload_limit(name) for name in UPLOADS) + MAX_JSON_BYTES
        if length is None:
            raise RequestError("body", "send a Content-Length with an upload", 411)
        if int(length) > limit:
            raise RequestError("body", f"the request is {int(length) / 1e6:.1f} MB; each upload may be "
                                       f"{settings.max_upload_mb:g} MB at most (a deck "
                                       f"{settings.max_deck_mb:g} MB)", 413)
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
                data["options"] = jsonio.loads(data["options"]) if data["options"].strip() else {}
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


def submit_openapi() -> dict:
    upload = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["direct", "guided"]}, "text": {"type": "string"},
            "topic": {"type": "string"}, "preset": {"type": "string"}, "voice": {"type": "string"},
            "profile": {"type": "string", "description": "one of your profiles (GET /api/profiles)"},
            "options": {"type": "string", "description": "JSON object: JobRequest.options"},
            "image": {**upload, "description": "portrait: PNG, JPEG or WebP"},
            "voice_ref": {**upload, "description": "voice to clone: WAV, FLAC, MP3, Ogg or M4A"},
            "deck": {**upload, "description": "slides to narrate: PPTX (its speaker notes are the "
                                              "narration) or PDF (with notes); then no text or topic"},
            "notes": {**upload, "description": "the deck's narration as UTF-8 Markdown: one section "
                                               "per slide, '---' lines between"}}}},
    }}}
