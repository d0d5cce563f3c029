"""Inventory sync from any channel (counts and deltas, idempotent by event id) and reads."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from serving.bounds import PathId
from serving.deps import LedgerDep
from serving.ledger import InventoryEvent
from serving.schemas.operations import AdjustmentsIn
from serving.security import InventoryScope

router = APIRouter(prefix="/v1/inventory", tags=["inventory"])


@router.post("/adjustments")
def adjust(body: AdjustmentsIn, ledger: LedgerDep, _: InventoryScope) -> dict[str, Any]:
    """Apply counts (absolute on-hand) and deltas. A repeated event id is a no-op; a count
    older than the newest one never overwrites it; reservations are kept."""
    events = [
        InventoryEvent(
            event_id=e.event_id,
            event_time=e.event_time,
            node_id=e.node_id,
            sku=e.sku,
            kind=e.kind,
            qty=e.qty,
            source=e.source,
        )
        for e in body.events
    ]
    results = ledger.adjust(events)
    return {"results": [asdict(r) for r in results]}


@router.get("/{sku}")
def sku_levels(sku: PathId, ledger: LedgerDep, _: InventoryScope) -> dict[str, Any]:
    levels = ledger.availability([sku])
    return {
        "sku": sku,
        "available": sum(lv.available for lv in levels),
        "nodes": [asdict(lv) for lv in sorted(levels, key=lambda lv: lv.node_id)],
    }
