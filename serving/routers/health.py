"""Liveness and readiness: ready means models loaded and features within the staleness bound."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serving.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(runtime: RuntimeDep) -> Any:
    now = datetime.now(UTC)
    reasons = runtime.degraded_reasons(now)
    snap = runtime.snapshot
    body = {
        "status": "ready" if not reasons else "degraded",
        "reasons": reasons,
        "models": runtime.models.versions(),
        "features_newest_event": snap.newest_event.isoformat()
        if snap and snap.newest_event
        else None,
        "features_read_at": snap.read_at.isoformat() if snap else None,
    }
    # Degraded still routes (cost mode); only missing nodes make us unready.
    return JSONResponse(body, status_code=200 if runtime.nodes else 503)
