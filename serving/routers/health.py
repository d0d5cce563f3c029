"""Liveness and readiness: ready means models loaded and features within the staleness bound."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=None,
    responses={503: {"description": "Database unreachable or no nodes; `reasons` says which"}},
)
def readyz(runtime: RuntimeDep) -> Any:
    now = runtime.clock()
    serving, reasons = runtime.readiness(now)
    snap = runtime.snapshot
    body = {
        "status": "unavailable" if not serving else "ready" if not reasons else "degraded",
        "reasons": reasons,
        "models": runtime.models.versions(),
        "features_newest_event": snap.newest_event.isoformat()
        if snap and snap.newest_event
        else None,
        "features_oldest_event": snap.oldest_event.isoformat()
        if snap and snap.oldest_event
        else None,
        "features_read_at": snap.read_at.isoformat() if snap else None,
        "now": now.isoformat(),
    }
    # Degraded still routes (cost mode); no database or no nodes make us unready.
    return JSONResponse(body, status_code=200 if serving else 503)
