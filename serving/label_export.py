"""Ledger outcomes → canonical ``allocations`` rows: every live allocation and every node
rejection becomes a stockout-risk training label for the next training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from features.contracts.raw import validate
from serving.destinations import locate
from serving.ledger.tables import order_allocations, orders
from serving.schemas.order import Destination


def allocation_labels(engine: Engine) -> pd.DataFrame:
    """One canonical allocation row per ledger allocation; ``rejected`` is the label."""
    oa, o = order_allocations, orders
    query = select(
        oa.c.allocation_id,
        oa.c.order_id,
        oa.c.node_id,
        oa.c.sku,
        oa.c.qty,
        oa.c.status,
        oa.c.reason,
        oa.c.created_at,
        o.c.plan,
    ).join(o, o.c.order_id == oa.c.order_id)
    rows: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            request = (r.plan or {}).get("request") or {}
            try:
                where = locate(Destination.model_validate(request.get("destination") or {}))
            except Exception:  # an order without a locatable destination yields no label
                continue
            rows.append(
                {
                    "event_timestamp": r.created_at,
                    "allocation_id": f"ledger-{r.allocation_id}",
                    "order_id": r.order_id,
                    "node_id": r.node_id,
                    "sku": r.sku,
                    "qty": int(r.qty),
                    "dest_region": where.region or "??",
                    "dest_lat": where.lat,
                    "dest_lon": where.lon,
                    "rejected": r.status == "rejected",
                    "reason": r.reason,
                }
            )
    frame = pd.DataFrame(
        rows,
        columns=[
            "event_timestamp",
            "allocation_id",
            "order_id",
            "node_id",
            "sku",
            "qty",
            "dest_region",
            "dest_lat",
            "dest_lon",
            "rejected",
            "reason",
        ],
    )
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return validate("allocations", frame)


def export_labels(engine: Engine, out: Path) -> int:
    frame = allocation_labels(engine)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return len(frame)
