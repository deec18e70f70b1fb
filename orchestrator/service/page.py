"""What people and Prometheus look at: the page (it holds no data: it calls the API) and /metrics."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.service.deps import Admin, Svc

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter()


@router.get("/metrics", summary="Prometheus metrics (admins: the whole server's; no label carries a user's text)",
            response_class=Response)
def metrics(svc: Svc, _admin: Admin):
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")
