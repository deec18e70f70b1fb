"""The profile routes (issue 23): a user's reusable portrait(s), voice sample with its
transcript, and consent, made by the code `podium profile create` runs
(orchestrator/profiles/make.py) in that user's own folder of the data folder
(DATA/profiles/user-ID: built under a temporary name, then renamed), never shown to another.

  POST   /api/profiles                    multipart: name, image (repeat), voice, voice_text, consent
  GET    /api/profiles                    the caller's profiles
  GET    /api/profiles/{name}             images, voice (length, transcript), consent, each file's sha256
  GET    /api/profiles/{name}/images/{n}  a portrait (PNG; n from 1)
  PUT    /api/profiles/{name}/voice-text  {"text": "..."}: the transcript, corrected
  DELETE /api/profiles/{name}             204; 409 while a queued or running job uses it
A job names one with `profile`; a `podium worker` gets it as an archive (worker_api.py).
Speech recognition runs in a child process (voice_sample.transcribe): the service stays torch-free.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from podium.errors import PodiumError, one_line

from orchestrator.profiles import profile as profiles
from orchestrator.service.deps import Reader, Svc, Writer
from orchestrator.service.quotas import check_upload
from orchestrator.service.runner import profiles_dir
from orchestrator.service.schemas import RequestError
from orchestrator.service.state import Service
from orchestrator.service.uploads import store_upload
from orchestrator.service.users import User

MAX_IMAGES = 30
TEXT_FIELDS = ("name", "consent", "voice_text")
router = APIRouter(prefix="/api/profiles", tags=["profiles"])


class VoiceText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., max_length=2000, description="exactly what the voice sample says")


def root_of(svc: Service, user: User) -> Path:
    return profiles_dir(svc.settings.data_dir, user.id)


def _load(svc: Service, user: User, name: str) -> profiles.Profile:
    """The user's profile `name`, or 404 (another user's is not found either)."""
    with profiles.stored_in(root_of(svc, user)):
        try:
            return profiles.load(profiles.check_name(name))
        except profiles.ProfileError as err:
            raise RequestError("name", _api_words(str(err)), 404 if "no profile named" in str(err) else 422) from None


def _api_words(message: str) -> str:
    """The CLI's advice in the API's words: its fields, not its flags."""
    for flag, field in (("--voice-text", "voice_text"), ("--consent", "consent"), ("--image", "image"),
                        ("--voice", "voice"), ("`podium profile list`", "GET /api/profiles"),
                        ("`podium profile create`", "POST /api/profiles")):
        message = message.replace(flag, field)
    return message


def view(profile: profiles.Profile, full: bool = True) -> dict:
    """A profile as the API answers it (`full=False`: for the list)."""
    m = profile.manifest
    voice, consent = m.get("voice"), m["consent"]
    base = f"/api/profiles/{profile.name}"
    shown = {"name": profile.name, "images": len(m["images"]),
             "voice_seconds": voice["seconds"] if voice else None, "consent_date": consent["date"],
             "lora": bool(m.get("lora")), "links": {"self": base, "portrait": f"{base}/images/1"}}
    if not full:
        return shown
    return shown | {
        "image_links": [f"{base}/images/{n}" for n in range(1, len(m["images"]) + 1)],
        "notes": m.get("notes", []),
        "voice": {"seconds": voice["seconds"], "source_seconds": voice["source_seconds"],
                  "start_seconds": voice["start_seconds"], "level_db": voice["level_db"],
                  "transcript": profile.voice_text, "transcript_source": voice["transcript_source"]}
        if voice else None,
        "consent": {k: consent.get(k) for k in ("text", "who", "account", "date", "time")},
        "files": {rel: sums["sha256"] for rel, sums in m["files"].items()},
    }


# ---- create ------------------------------------------------------------------------------

def _create_openapi() -> dict:
    text, upload = {"type": "string"}, {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["name", "image", "consent"], "properties": {
            "name": {**text, "pattern": profiles.NAME.pattern},
            "image": {"type": "array", "items": upload, "description": "one face each; the first is the portrait"},
            "voice": {**upload, "description": "5-30 s of one person speaking (WAV, FLAC, MP3, Ogg, M4A)"},
            "voice_text": {**text, "description": "what the sample says (default: speech recognition)"},
            "consent": {**text, "maxLength": profiles.MAX_CONSENT}}}}}}}


@router.post("", status_code=201, openapi_extra=_create_openapi(),
             summary="Create a profile (multipart: name, image..., voice, voice_text, consent)")
async def create(request: Request, svc: Svc, user: Writer):
    """Form fields `name`, `consent`, `voice_text` (optional: else speech recognition writes it),
    files `image` (one or more; the first is the portrait videos use) and `voice` (optional,
    5-30 s). The profile is whole or absent: a refusal names its field and leaves nothing."""
    length = request.headers.get("content-length")
    limit = (MAX_IMAGES + 1) * svc.settings.max_upload_bytes + (1 << 20)
    if length is None or not length.isdigit():
        raise RequestError("body", "send a Content-Length with the upload", 411)
    if int(length) > limit:
        raise RequestError("body", f"the request is {int(length) / 1e6:.1f} MB; each file may be "
                                   f"{svc.settings.max_upload_mb:g} MB at most", 413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise RequestError("body", "send a form (multipart/form-data) with the images", 415)
    await run_in_threadpool(_admit, svc, user, int(length))
    form = await request.form(max_files=MAX_IMAGES + 1, max_fields=len(TEXT_FIELDS) + 1)
    try:
        fields, images, voice = _fields(form)
        made = await run_in_threadpool(_create, svc, user, fields, images, voice)
    finally:
        await form.close()
    await run_in_threadpool(svc.users.record, user.id, uploaded=int(length))
    await run_in_threadpool(svc.users.audit, user.name, "profile.create", made.name)
    return Response(_json(view(made)), status_code=201, media_type="application/json",
                    headers={"Location": f"/api/profiles/{made.name}"})


def _admit(svc: Service, user: User, upload_bytes: int) -> None:
    """403 for a role that may not make profiles is the route's; here: 429 past the user's
    megabytes of uploads a day (quotas.py), as for a job's uploads."""
    check_upload(svc.limits_of(user), svc.users.used(user.id), upload_bytes)


def _json(value) -> bytes:
    import json

    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _fields(form) -> tuple[dict, list[UploadFile], Optional[UploadFile]]:
    fields, images, voice = {}, [], None
    for key, value in form.multi_items():
        if key == "image" or key == "voice":
            if not isinstance(value, UploadFile):
                raise RequestError(key, "must be a file upload", 422)
            if key == "voice" and voice is not None:
                raise RequestError("voice", "give one voice sample", 422)
            images += [value] if key == "image" else []
            voice = value if key == "voice" else voice
        elif key in TEXT_FIELDS:
            if isinstance(value, UploadFile) or key in fields:
                raise RequestError(key, "must be one form field", 422)
            fields[key] = value
        else:
            raise RequestError(key, "is not a field this API takes (name, image, voice, voice_text, consent)", 422)
    return fields, images, voice


def _create(svc: Service, user: User, fields: dict, images: list[UploadFile],
            voice: Optional[UploadFile]) -> profiles.Profile:
    """The checks that name a field first (name, consent, images), then make.create on the
    uploads staged in a temporary folder (removed whatever happens)."""
    name, consent = fields.get("name", ""), fields.get("consent", "")  # a space in a name is refused
    voice_text = fields.get("voice_text", "").strip() or None
    root = root_of(svc, user)
    with profiles.stored_in(root):
        _check(lambda: profiles.check_name(name), "name")
        _check(lambda: profiles.consent_record(consent), "consent")
        if not images:
            raise RequestError("image", "a profile needs a portrait: upload one image (or more) showing your face")
        if voice_text and voice is None:
            raise RequestError("voice_text", "goes with a voice sample: upload the voice it says")
        if (root / name).exists():
            raise RequestError("name", f"profile {name} already exists: delete it first, or choose another name", 409)
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=root))
        try:
            shown, paths = {}, []
            for number, upload in enumerate(images, 1):
                paths.append(_stage("image", "image", upload, staging / f"image-{number}", svc))
                shown[str(paths[-1])] = f"image {number} ({_client_name(upload, 'image')})"
            sample = _stage("voice_ref", "voice", voice, staging / "voice", svc) if voice else None
            if sample:
                shown[str(sample)] = f"voice sample ({_client_name(voice, 'voice')})"
            try:
                from orchestrator.profiles.make import create

                return create(name, [str(p) for p in paths], consent, str(sample) if sample else None,
                              voice_text, say=lambda line: None, account=user.name)
            except PodiumError as err:
                raise _refusal(str(err), shown) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _check(step, field: str):
    try:
        return step()
    except profiles.ProfileError as err:
        raise RequestError(field, _api_words(str(err))) from None


def _stage(kind: str, field: str, upload: UploadFile, folder: Path, svc: Service) -> Path:
    """The upload in `folder`, checked by its bytes (uploads.py), refused under `field`'s name."""
    folder.mkdir()
    try:
        return folder / store_upload(kind, upload.file, folder, svc.settings.max_upload_bytes)
    except RequestError as err:
        raise RequestError(field, err.message, err.status) from None


def _client_name(upload: UploadFile, default: str) -> str:
    return one_line(Path(upload.filename or default).name, 80) or default


def _refusal(message: str, shown: dict[str, str]) -> RequestError:
    """What make.create refused, with the field it concerns (its message says which: an image,
    the voice sample, its transcript) and the file as the client named it."""
    for path, name in shown.items():
        message = message.replace(f"image {path}", name).replace(f"voice sample {path}", name).replace(path, name)
    message = _api_words(message)
    if "already exists" in message:  # another request made it meanwhile
        return RequestError("name", message.split(":")[0] + ": delete it first, or choose another name", 409)
    if message.startswith("image"):
        return RequestError("image", message)
    if "transcript" in message or "speech recognition" in message or "no speech" in message:
        return RequestError("voice_text", message)
    if message.startswith("voice sample") or "voice" in message:
        return RequestError("voice", message)
    return RequestError("body", message)


# ---- read, correct, delete ---------------------------------------------------------------

@router.get("", summary="Your profiles")
def list_profiles(svc: Svc, user: Reader):
    with profiles.stored_in(root_of(svc, user)):
        found = []
        for name in profiles.names():
            try:
                found.append(view(profiles.load(name, verify=False), full=False))
            except profiles.ProfileError:
                continue  # one damaged: the others still listed (GET it to see what is wrong)
    return {"profiles": found}


@router.get("/{name}", summary="A profile: images, voice length, transcript, consent, sha256 of each file")
def show(name: str, svc: Svc, user: Reader):
    return view(_load(svc, user, name))


@router.get("/{name}/images/{number}", response_class=FileResponse, summary="One of its portraits (PNG)")
def image(name: str, number: int, svc: Svc, user: Reader):
    profile = _load(svc, user, name)
    kept = profile.manifest["images"]
    if not 1 <= number <= len(kept):
        raise RequestError("number", f"profile {name} has {len(kept)} image(s): 1 to {len(kept)}", 404)
    return FileResponse(profile.folder / kept[number - 1], media_type="image/png")


@router.put("/{name}/voice-text", summary="Correct the voice sample's transcript")
def set_voice_text(name: str, body: VoiceText, svc: Svc, user: Writer):
    if _load(svc, user, name).voice is None:
        raise RequestError("text", f"profile {name} has no voice sample: create it again with one", 422)
    with profiles.stored_in(root_of(svc, user)):
        try:
            changed = profiles.set_text(name, body.text)
        except profiles.ProfileError as err:
            message = _api_words(str(err)).replace("podium profile set-text NAME", "PUT voice-text with")
            raise RequestError("text", message, 409 if "in use" in message else 422) from None
    svc.users.audit(user.name, "profile.voice_text", name)
    return view(changed)


@router.delete("/{name}", status_code=204, summary="Delete a profile (409 while a job uses it)")
def delete(name: str, svc: Svc, user: Writer):
    _check(lambda: profiles.check_name(name), "name")  # a damaged profile can be deleted too
    with svc.submitting:  # no job can name it between the check and the removal
        waiting = [job.id for job in svc.store.active()
                   if job.owner == user.id and job.request.get("profile") == name]
        if waiting:
            raise RequestError("name", f"profile {name} is used by {len(waiting)} queued or running job(s) "
                                       f"({', '.join(waiting)}): wait for them to finish or cancel them, "
                                       "then delete it", 409)
        with profiles.stored_in(root_of(svc, user)):
            try:
                profiles.delete(name)
            except profiles.ProfileError as err:
                raise RequestError("name", _api_words(str(err)), 409 if "in use" in str(err) else 404) from None
    svc.users.audit(user.name, "profile.delete", name)
    return Response(status_code=204)


def job_profile(svc: Service, owner: int, name: str, uploads) -> dict:
    """What a job made with profile `name` keeps of it: the consent's date (and the name, in
    its request); 422 naming `profile` when the owner has none of that name."""
    with profiles.stored_in(profiles_dir(svc.settings.data_dir, owner)):
        try:
            profile = profiles.load(name)
        except profiles.ProfileError as err:
            raise RequestError("profile", _api_words(str(err))) from None
    if profile.voice is not None and "voice_ref" in uploads:
        raise RequestError("voice_ref", f"profile {name} brings its voice sample: drop the voice_ref upload, "
                                        "or the profile")
    consent = profile.manifest["consent"]
    return {"profile": name, "date": consent["date"], "who": consent.get("who", "")}
