"""Routing an order again as a whole: after a rejection when its shipment caps span every line
(``ship_complete``, ``max_shipments``), or after its destination changed.

The unshipped remainder of every line is routed from scratch (rejecting nodes excluded, the
shipment budget reduced by parcels already sent), then the ledger swaps the old reservations
for the new plan in one transaction: all lines move, or none does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from serving.decide import decide
from serving.ledger import OrderView
from serving.runtime import Runtime
from serving.schemas.order import OrderIn


def has_shipment_caps(body: OrderIn) -> bool:
    return body.ship_complete or body.max_shipments is not None


def unshipped(body: OrderIn, view: OrderView) -> tuple[OrderIn | None, frozenset[str]]:
    """The order with only what has not shipped (``None`` if everything did), and the nodes
    that already shipped parcels of it."""
    shipped: dict[str, int] = defaultdict(int)
    nodes: set[str] = set()
    for a in view.allocations:
        if a.status == "shipped":
            shipped[a.line_id] += a.qty
            nodes.add(a.node_id)
    lines = [
        ln.model_copy(update={"qty": ln.qty - shipped[ln.line_id]})
        for ln in body.lines
        if ln.qty - shipped[ln.line_id] > 0
    ]
    if not lines:
        return None, frozenset(nodes)
    return body.model_copy(update={"lines": lines}), frozenset(nodes)


def route_again(
    runtime: Runtime,
    view: OrderView,
    body: OrderIn,
    *,
    exclude: frozenset[str],
    why: str,
    store_request: bool = False,
) -> dict[str, Any]:
    """Route the unshipped remainder of ``body`` and swap the reservations; returns the decision.

    Raises ``InsufficientStock`` (nothing moved) when another order took the stock meanwhile;
    an unshippable answer is returned with ``shippable`` false and nothing changed.
    """
    remainder, shipped_nodes = unshipped(body, view)
    if remainder is None:
        return {"shippable": False, "allocations": [], "unallocated": [], "nothing_to_route": True}
    answer = decide(remainder, runtime, exclude=exclude, shipped_nodes=shipped_nodes)
    if not answer["shippable"]:
        return answer
    plan = None
    if store_request:
        plan = {"request": body.model_dump(mode="json"), "decision": answer}
    from serving.orchestration import allocation_requests  # orchestration calls this module

    runtime.ledger.replan(
        view.order_id,
        allocation_requests(answer),
        why=why,
        plan=plan,
        expect_reserved=frozenset(
            a.allocation_id for a in view.allocations if a.status == "reserved"
        ),
    )
    return answer


def shrink_request(plan: dict[str, Any], line_id: str, qty: int) -> dict[str, Any]:
    """The stored plan with ``qty`` fewer units of ``line_id`` in its request (the line goes
    when none is left), so a later re-route routes only what the customer still wants."""
    request = dict(plan.get("request") or {})
    lines = []
    for ln in request.get("lines") or []:
        if ln.get("line_id") == line_id:
            ln = {**ln, "qty": ln["qty"] - qty}
            if ln["qty"] <= 0:
                continue
        lines.append(ln)
    if lines:
        request["lines"] = lines
    return {**plan, "request": request}
