"""Operations KPIs: on-time against the promise, rejections, reroutes, shipments and cost per
order, promise coverage, degraded share and decision latency (the console's KPI page)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from serving.deps import LedgerDep
from serving.problems import InvalidSince
from serving.reports import kpi_report, kpi_since
from serving.security import OrdersScope

router = APIRouter(prefix="/v1", tags=["kpis"])


@router.get("/kpis")
def kpis(
    ledger: LedgerDep,
    _: OrdersScope,
    since: Annotated[
        str, Query(max_length=64, description="ISO 8601 time or an age like 24h, 7d")
    ] = "7d",
) -> dict[str, Any]:
    """Overall, by day (UTC), by channel and by node type, for orders placed since ``since``."""
    try:
        at = kpi_since(since)
    except ValueError as exc:
        raise InvalidSince(str(exc), field="since") from exc
    return kpi_report(ledger, at)
