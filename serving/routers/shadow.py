"""Shadow mode: how the policy's shadow routing mode would have decided beside the live one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from serving.deps import RuntimeDep
from serving.problems import InvalidSince
from serving.security import RouteScope
from serving.shadow import parse_since, report

router = APIRouter(prefix="/v1/shadow", tags=["shadow"])


@router.get("/summary")
def shadow_summary(
    runtime: RuntimeDep,
    _: RouteScope,
    since: Annotated[
        str | None,
        Query(max_length=64, description="ISO 8601 time or an age like 24h, 7d; default all"),
    ] = None,
) -> dict[str, Any]:
    """Per shadow mode: share of orders whose nodes differ, cost and predicted-risk deltas,
    shipments per order. Turn shadow mode on with `shadow: {mode: ...}` in the policy."""
    try:
        at = parse_since(since)
    except ValueError as exc:
        raise InvalidSince(str(exc), field="since") from exc
    runtime.audits.flush()  # the live rows the shadow plans are compared with
    out = report(runtime.ledger, at)
    shadow = runtime.policy.shadow
    out["shadow_mode"] = shadow.mode if shadow is not None else None
    return out
