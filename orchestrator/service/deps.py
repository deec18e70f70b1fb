"""FastAPI dependencies of the routes: the running Service, who the request is from (its token
or the page's session cookie), what that user may do, and the jobs that user may see."""
from __future__ import annotations

import secrets
from typing import Annotated, Optional

from fastapi import Depends, Request

from orchestrator.service.schemas import RequestError
from orchestrator.service.state import Service
from orchestrator.service.store import JobStore
from orchestrator.service.users import User

SESSION_COOKIE = "podium_session"
LEGACY_COOKIE = "podium_token"  # the page of before users set it (GET only, --token only)
SERVER_ADMIN = User(0, "admin", "admin")  # --token: the one admin of before users
LOCAL_ADMIN = User(0, "local", "admin")  # loopback with nothing configured


class Unauthorized(Exception):
    """No usable credential: 401 (app.py answers it; `expired` also clears the cookie)."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def service(request: Request) -> Service:
    return request.app.state.service


def store(request: Request) -> JobStore:
    return request.app.state.service.store


def bearer(request: Request) -> Optional[str]:
    given = request.headers.get("authorization", "")
    return given[7:].strip() if given[:7].lower() == "bearer " else None


def identify(request: Request) -> User:
    """Who sent the request: the Bearer token (the server's --token, or a user's), else the
    session cookie, else (loopback, no --token, no users) the implicit local admin."""
    svc: Service = request.app.state.service
    wanted = svc.settings.token
    token = bearer(request)
    if token is None and wanted and request.method in ("GET", "HEAD"):
        token = request.cookies.get(LEGACY_COOKIE)
    if token is not None:
        if wanted and secrets.compare_digest(token.encode(), wanted.encode()):
            return SERVER_ADMIN
        user = svc.users.authenticate(token)
        if user is None:
            raise Unauthorized("Authorization: the token is unknown or revoked: ask an admin for one "
                               "(`podium serve tokens create NAME`)")
        return user
    session = request.cookies.get(SESSION_COOKIE)
    if session:
        user, expired = svc.users.session(session)
        if user is not None:
            return user
        if svc.implicit_admin():  # a cookie of another server once on this port: nothing to sign in to
            return LOCAL_ADMIN
        if expired:
            raise Unauthorized("session: your sign-in has expired: sign in again with your token", expired=True)
        raise Unauthorized("session: you are signed out (or your token was revoked): sign in again", expired=True)
    if svc.implicit_admin():
        return LOCAL_ADMIN
    raise Unauthorized("Authorization: a Bearer token is required (a user's, from `podium serve tokens "
                       "create NAME`, or the server's --token)")


def current_user(request: Request) -> User:
    """The request's user, counted against its requests a minute."""
    user = identify(request)
    svc: Service = request.app.state.service
    svc.limiter.check(user.id if user.id else -1, svc.limits_of(user).requests_per_minute)
    request.state.user = user
    return user


def _role(*roles: str, why: str):
    def check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in roles:
            raise RequestError("role", f"a {user.role} {why}", 403)
        return user
    return check


class Jobs:
    """The jobs a user may see, and nothing else: every query carries the filter (admins and
    workers: all). Another user's job is not found (404), as one that does not exist."""

    def __init__(self, svc: Service, user: User):
        self.svc, self.user = svc, user
        self.seen_by = None if user.sees_all else user.id

    def get(self, job_id: str):
        return self.svc.job(job_id, seen_by=self.seen_by)

    def owned(self, job_id: str):
        """The job, if the user may change it: its owner (or an admin); shared is not enough."""
        job = self.get(job_id)
        if self.seen_by is not None and job.owner != self.user.id:
            raise RequestError("id", f"no job with id {job_id}", 404)
        return job

    def list(self, state, limit, offset):
        return self.svc.store.list(state, limit, offset, seen_by=self.seen_by)

    def counts(self):
        return self.svc.store.counts(seen_by=self.seen_by)


Svc = Annotated[Service, Depends(service)]
Store = Annotated[JobStore, Depends(store)]
Reader = Annotated[User, Depends(_role("admin", "member", "viewer", why="token may only claim, report and upload jobs"))]
Writer = Annotated[User, Depends(_role("admin", "member", why="may only read jobs shared with it"))]
Admin = Annotated[User, Depends(_role("admin", why="may not do this: it is for admins"))]
WorkerRole = Annotated[User, Depends(_role("worker", "admin", why="may not do what workers do"))]
GUARD = [Depends(current_user)]


def jobs_of(svc: Svc, user: Reader) -> Jobs:
    return Jobs(svc, user)


OwnJobs = Annotated[Jobs, Depends(jobs_of)]
