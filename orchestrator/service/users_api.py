"""The routes of a shared server's people: signing the page in and out (an HttpOnly,
SameSite=Strict cookie), who is signed in, and for admins the users with their usage, their
tokens, job shares and the audit trail."""
from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.service.deps import (
    SESSION_COOKIE,
    SERVER_ADMIN,
    Admin,
    OwnJobs,
    Svc,
    Unauthorized,
    current_user,
)
from orchestrator.service.schemas import RequestError
from orchestrator.service.users import User, UserError

router = APIRouter(prefix="/api", tags=["users"])


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(..., min_length=1, max_length=400)


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., max_length=200)
    role: str = "member"


def _user_error(err: UserError, status: int = 422) -> RequestError:
    return RequestError("user", str(err), 404 if str(err).startswith("no user") else status)


@router.post("/session", summary="Sign the page in with a token: sets the session cookie")
def sign_in(body: SignIn, request: Request, svc: Svc):
    """Too many failures from one address a minute: 429 with Retry-After (quotas.FailureLimiter)."""
    address = request.client.host if request.client else "unknown"
    svc.sign_ins.check(address)
    wanted = svc.settings.token
    if wanted and secrets.compare_digest(body.token.encode(), wanted.encode()):
        user = SERVER_ADMIN
    else:
        user = svc.users.authenticate(body.token)
    if user is None:
        svc.sign_ins.failed(address)
        raise Unauthorized("token: unknown or revoked: ask an admin for one (`podium serve tokens create NAME`)")
    seconds = svc.settings.session_hours * 3600
    value = svc.users.open_session(user, seconds)
    svc.users.audit(user.name, "session.open", None)
    answer = JSONResponse(_me(svc, user))
    answer.set_cookie(SESSION_COOKIE, value, max_age=int(seconds), path="/", httponly=True, samesite="strict",
                      secure=request.url.scheme == "https")
    return answer


@router.delete("/session", status_code=204, summary="Sign the page out")
def sign_out(request: Request, svc: Svc):
    value = request.cookies.get(SESSION_COOKIE)
    if value:
        svc.users.close_session(value)
    answer = Response(status_code=204)
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return answer


@router.get("/me", summary="Who is signed in: name, role, limits, the last day's usage")
def me(request: Request, svc: Svc):
    return _me(svc, current_user(request))


def _me(svc, user: User) -> dict:
    limits = svc.limits_of(user)
    return {"name": user.name, "role": user.role, "implicit": svc.implicit_admin() and user.id == 0,
            "limits": limits.__dict__, "usage": _usage(svc, user.id)}


def _usage(svc, user_id: int) -> dict:
    used = svc.users.used(user_id)
    counts = svc.store.counts(seen_by=user_id)
    return {"jobs": sum(counts.values()), "active": counts["queued"] + counts["running"],
            "render_minutes_today": round(used["rendered_s"] / 60, 2),
            "upload_mb_today": round(used["uploaded"] / 1e6, 3)}


@router.get("/users", summary="Admins: the users, their roles and usage")
def list_users(svc: Svc, _admin: Admin):
    return {"users": [{**row, "usage": _usage(svc, row["id"])} for row in svc.users.users()]}


@router.post("/users", status_code=201, summary="Admins: add a user")
def add_user(body: NewUser, svc: Svc, admin: Admin):
    try:
        user = svc.users.add(body.name, body.role, actor=admin.name)
    except UserError as err:
        raise _user_error(err, 409 if "exists" in str(err) else 422) from None
    return {"id": user.id, "name": user.name, "role": user.role}


@router.delete("/users/{name}", status_code=204, summary="Admins: remove a user (not the last admin)")
def remove_user(name: str, svc: Svc, admin: Admin):
    try:
        svc.users.remove(name, actor=admin.name)
    except UserError as err:
        raise _user_error(err, 409) from None
    return Response(status_code=204)


@router.post("/users/{name}/tokens", status_code=201, summary="Admins: a new token for a user (shown once)")
def create_token(name: str, svc: Svc, admin: Admin):
    try:
        return {"name": name, "token": svc.users.create_token(name, actor=admin.name)}
    except UserError as err:
        raise _user_error(err) from None


@router.delete("/tokens/{prefix}", status_code=204, summary="Admins: revoke a token by its pod_<lookup> prefix")
def revoke_token(prefix: str, svc: Svc, admin: Admin):
    try:
        svc.users.revoke(prefix, actor=admin.name)
    except UserError as err:
        raise RequestError("token", str(err), 404) from None
    return Response(status_code=204)


@router.put("/jobs/{id}/shares/{name}", status_code=204, summary="Let a user (a viewer) read one of your jobs")
def share(id: str, name: str, svc: Svc, jobs: OwnJobs, unshare: bool = False):  # noqa: A002
    job = jobs.owned(id)
    if jobs.user.role == "viewer":
        raise RequestError("role", "a viewer may only read jobs shared with it", 403)
    try:
        other = svc.users.user(name)
    except UserError as err:
        raise _user_error(err) from None
    svc.store.share(job.id, other.id, not unshare)
    svc.users.audit(jobs.user.name, "job.unshare" if unshare else "job.share", job.id, {"with": name})
    return Response(status_code=204)


@router.get("/audit", summary="Admins: the audit trail, oldest first (?after=ID for the next page)")
def audit(svc: Svc, _admin: Admin, after: int = 0, limit: int = 500):
    if not 1 <= limit <= 5000:
        raise RequestError("limit", "must be from 1 to 5000")
    if not 0 <= after < 2**62:
        raise RequestError("after", "must be an audit row id, 0 or more")
    return {"audit": list(svc.users.audit_rows(after, limit))}
