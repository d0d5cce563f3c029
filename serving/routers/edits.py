"""Edits before shipment: cancel units of a line, change the destination (re-route the
unshipped lines atomically). Shipped units are refused with a problem pointing to returns."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from serving import lifecycle
from serving.deps import RuntimeDep
from serving.ledger import OrderStateError
from serving.ledger.errors import LineAlreadyShipped
from serving.orchestration import Unfillable
from serving.routers.orders import order_json
from serving.schemas.order import Destination, OrderIn
from serving.security import OrdersScope

router = APIRouter(prefix="/v1/orders", tags=["orders"])


class LineCancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    qty: int | None = Field(
        default=None, ge=1, description="Units to cancel; default every unit not yet shipped"
    )


class DestinationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    destination: Destination


@router.post(
    "/{order_id}/lines/{line_id}/cancel", summary="Cancel units of one line before it ships"
)
def cancel_line(
    order_id: str,
    line_id: str,
    runtime: RuntimeDep,
    _: OrdersScope,
    body: LineCancelIn | None = None,
) -> dict[str, Any]:
    qty = body.qty if body is not None else None
    view = runtime.ledger.cancel_line(order_id, line_id, qty, edit_plan=lifecycle.shrink_request)
    return order_json(view)


@router.post("/{order_id}/destination", summary="Change the address: re-route unshipped lines")
def change_destination(
    order_id: str, body: DestinationIn, runtime: RuntimeDep, _: OrdersScope
) -> dict[str, Any]:
    """Every unshipped line is routed from scratch to the new address and its reservations are
    swapped in one transaction; if the new plan cannot be filled nothing changes (409)."""
    view = runtime.ledger.get_order(order_id)
    if view.status not in ("placed", "partially_shipped"):
        raise OrderStateError(order_id, view.status, "change the destination of")
    original = OrderIn.model_validate(view.plan["request"])
    moved = original.model_copy(update={"destination": body.destination})
    if lifecycle.unshipped(moved, view)[0] is None:
        raise LineAlreadyShipped(order_id, "*", "every line already shipped")
    answer = lifecycle.route_again(
        runtime, view, moved, exclude=frozenset(), why="destination_changed", store_request=True
    )
    if not answer["shippable"]:
        raise Unfillable(
            "the unshipped lines cannot be filled for the new destination; nothing changed, "
            "the order keeps its address and reservations",
            unallocated=answer.get("unallocated"),
            field="destination",
        )
    shipped = sorted({a.line_id for a in view.allocations if a.status == "shipped"})
    return {
        "rerouted": True,
        "shipped_lines_kept": shipped,
        "decision": answer,
        "order": order_json(runtime.ledger.get_order(order_id)),
    }
