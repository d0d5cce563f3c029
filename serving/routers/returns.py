"""Returns: routecast picks where a return goes (and says why); receipts put resellable units
back into that node's stock through the movement log, damaged ones are only recorded."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from routing.returns import choose_return_node
from serving import metrics
from serving.bounds import LongId
from serving.deps import RuntimeDep
from serving.destinations import locate
from serving.ledger.returns import ReturnView
from serving.problems import RoutecastError
from serving.schemas.order import OrderIn
from serving.security import InventoryScope, OrdersScope

router = APIRouter(prefix="/v1", tags=["returns"])


class NoReturnNode(RoutecastError):
    status, type, title = 409, "no-return-node", "No node accepts this return"


class ReturnLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_id: str = Field(..., min_length=1, max_length=64)
    qty: int = Field(..., ge=1)


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[ReturnLineIn] = Field(..., min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=200)


class ReceiptLineIn(ReturnLineIn):
    condition: Literal["resellable", "damaged"]


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receipt_id: LongId | None = Field(
        None,
        description="The warehouse's id for this receipt: a resend with the same id and lines"
        " is a no-op; without it every call records a new receipt",
    )
    lines: list[ReceiptLineIn] = Field(..., min_length=1, max_length=200)


def return_json(r: ReturnView) -> dict[str, Any]:
    return {
        "return_id": r.return_id,
        "order_id": r.order_id,
        "node_id": r.node_id,
        "why": r.why,
        "status": r.status,
        "reason": r.reason,
        "created_at": r.created_at.isoformat(),
        "lines": [asdict(ln) for ln in r.lines],
    }


@router.post("/orders/{order_id}/returns", status_code=201, summary="Create a return")
def create_return(
    order_id: str, body: ReturnIn, runtime: RuntimeDep, _: OrdersScope
) -> dict[str, Any]:
    """The return goes to the nearest enabled node accepting returns for its product groups,
    else the policy's returns centre; the answer names the node and why."""
    view = runtime.ledger.get_order(order_id)
    original = OrderIn.model_validate(view.plan["request"])
    skus = {a.line_id: a.sku for a in view.allocations}
    groups = frozenset(
        rec.product_group
        for ln in body.lines
        if (rec := runtime.skus.get(skus.get(ln.line_id, "").upper())) is not None
    )
    where = locate(original.destination)
    chosen = choose_return_node(runtime.nodes, groups, where.lat, where.lon, runtime.policy.returns)
    if chosen is None:
        raise NoReturnNode(
            "no enabled node accepts returns of "
            + (", ".join(sorted(groups)) or "these products")
            + " and the policy names no returns centre; set returns.centre in the policy",
            field="lines",
        )
    created = runtime.ledger.create_return(
        order_id,
        node_id=chosen.node_id,
        why=chosen.why,
        reason=body.reason,
        lines=[(ln.line_id, ln.qty) for ln in body.lines],
    )
    metrics.RETURN_UNITS.labels("requested").inc(sum(ln.qty for ln in body.lines))
    return return_json(created)


@router.get("/returns/{return_id}")
def get_return(return_id: str, runtime: RuntimeDep, _: OrdersScope) -> dict[str, Any]:
    return return_json(runtime.ledger.get_return(return_id))


@router.post("/returns/{return_id}/receipts", summary="Record what arrived and its condition")
def receive(
    return_id: str, body: ReceiptIn, runtime: RuntimeDep, _: InventoryScope, response: Response
) -> dict[str, Any]:
    received, replayed = runtime.ledger.receive_return(
        return_id,
        [(ln.line_id, ln.qty, ln.condition) for ln in body.lines],
        receipt_id=body.receipt_id,
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
        return return_json(received)
    for ln in body.lines:
        metrics.RETURN_UNITS.labels(ln.condition).inc(ln.qty)
    return return_json(received)
