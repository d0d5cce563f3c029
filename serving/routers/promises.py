"""Promise monitoring: are the dates customers were told kept?"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from serving.deps import PromisesDep
from serving.problems import InvalidSince
from serving.security import RouteScope
from serving.shadow import parse_since

router = APIRouter(prefix="/v1/promises", tags=["promises"])


@router.get("/summary")
def promises_summary(
    promises: PromisesDep,
    _: RouteScope,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="ISO 8601 time or an age like 24h, 7d; default the monitor's window",
        ),
    ] = None,
) -> dict[str, Any]:
    """Coverage of `deliver_by` and P50 date error of confirmed shipments, overall, per node
    and per lane (node → destination region), and each lane's P90 widening."""
    try:
        at = parse_since(since)
    except ValueError as exc:
        raise InvalidSince(str(exc), field="since") from exc
    return promises.summary(at)
