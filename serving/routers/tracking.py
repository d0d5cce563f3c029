"""Tracking: where each parcel of an order is, what was promised, and the order's timeline.

The timeline is read from the order's events (the outbox), so it shows exactly what other
systems were told, in the same per-order sequence.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.deps import RuntimeDep
from serving.ledger.promise_outcomes import leg_promise
from serving.reports import order_timeline
from serving.security import OrdersScope

router = APIRouter(prefix="/v1/orders", tags=["orders"])


@router.get("/{order_id}/tracking", summary="Parcels, promise and status timeline of an order")
def tracking(order_id: str, runtime: RuntimeDep, _: OrdersScope) -> dict[str, Any]:
    view = runtime.ledger.get_order(order_id)  # 404 problem when unknown
    promise = (view.plan.get("decision") or {}).get("promise")
    timeline = order_timeline(runtime.ledger, order_id)
    parcels = []
    for s in view.shipments:
        parcels.append(
            {
                "shipment_id": s.shipment_id,
                "node_id": s.node_id,
                "line_ids": s.line_ids,
                "carrier": s.carrier,
                "tracking_number": s.tracking_number,
                "status": "delivered" if s.delivered_at else "in_transit",
                "shipped_at": s.shipped_at.isoformat(),
                "delivered_at": s.delivered_at.isoformat() if s.delivered_at else None,
                "promise": leg_promise(promise, s.node_id),
                "timeline": [t for t in timeline if t["shipment_id"] == s.shipment_id],
            }
        )
    waiting = [
        {"line_id": a.line_id, "node_id": a.node_id, "sku": a.sku, "qty": a.qty}
        for a in view.allocations
        if a.status == "reserved"
    ]
    return {
        "order_id": view.order_id,
        "status": view.status,
        "promise": promise,
        "shipments": parcels,
        "not_yet_shipped": waiting,
        "timeline": timeline,
    }
