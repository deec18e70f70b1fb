"""FastAPI dependencies of the routes: the running Service, its store, and the token check."""
from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from .state import Service
from .store import JobStore


class Unauthorized(Exception):
    """No token, or not the server's: 401 (app.py answers it)."""


def service(request: Request) -> Service:
    return request.app.state.service


def store(request: Request) -> JobStore:
    return request.app.state.service.store


def authorized(request: Request) -> None:
    """With a token: `Authorization: Bearer TOKEN`, or (GET, HEAD: the page's <video>) the
    `podium_token` cookie."""
    token_wanted = request.app.state.settings.token
    if not token_wanted:
        return
    given = request.headers.get("authorization", "")
    token = given[7:].strip() if given[:7].lower() == "bearer " else None
    if token is None and request.method in ("GET", "HEAD"):
        token = request.cookies.get("podium_token")
    if token is None or not secrets.compare_digest(token.encode(), token_wanted.encode()):
        raise Unauthorized()


Svc = Annotated[Service, Depends(service)]
Store = Annotated[JobStore, Depends(store)]
GUARD = [Depends(authorized)]
