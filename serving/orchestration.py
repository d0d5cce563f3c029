"""The order path's rules, as plain functions over the ledger and the decision function:
place (route → reserve, once more if a concurrent order took the stock, else reject as
unfillable) and reject (release, learn, reroute excluding every node that refused).

Routers parse, call these and answer; the ledger owns transactions and idempotency keys.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from routing import RejectReason
from serving import lifecycle, metrics, screening
from serving.decide import decide
from serving.ledger import (
    AllocationRequest,
    InsufficientStock,
    OrderView,
    RejectResult,
    Reservation,
)
from serving.ledger.errors import CapacityReached
from serving.ledger.records import Hold
from serving.problems import NoShipmentBudget, RoutecastError
from serving.runtime import Runtime
from serving.schemas.order import OrderIn

#: Called with (decision body, decision answer, order id) for every decision made, so the
#: caller can audit it off the request path.
OnDecision = Callable[[OrderIn, dict[str, Any], str], None]

#: Tries of route → reserve when concurrent orders take the stock between the two.
RESERVE_ATTEMPTS = 2


class Unfillable(RoutecastError):
    status, type, title = 409, "unfillable", "Order cannot be filled"


def request_hash(body: OrderIn, dumped: dict[str, Any] | None = None) -> str:
    """Digest of the canonical body: the same key with another body is refused. ``dumped``
    is ``body.model_dump(mode="json")`` when the caller has it already."""
    canonical = json.dumps(
        dumped if dumped is not None else body.model_dump(mode="json"),
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def allocation_requests(answer: dict[str, Any]) -> list[AllocationRequest]:
    return [
        AllocationRequest(
            line_id=a["line_id"], node_id=a["node_id"], sku=a["sku"], qty=int(a["qty"])
        )
        for a in answer["allocations"]
    ]


def fillable(body: OrderIn, answer: dict[str, Any]) -> bool:
    """A plan may be reserved when it allocates something and is complete or may be partial."""
    return bool(answer["allocations"]) and (bool(answer["shippable"]) or body.allow_partial)


def unfillable(answer: dict[str, Any]) -> Unfillable:
    missing = answer.get("unallocated") or []
    what = ", ".join(f"{m['sku']} x{m['qty']:g}" for m in missing) or "some lines"
    return Unfillable(
        f"cannot fill {what} from available stock; nothing was reserved. "
        "Allow partial fulfilment (allow_partial) or adjust inventory.",
        unallocated=missing,
        decision_id=answer["decision_id"],
    )


def lost_skus(exc: Exception) -> list[str]:
    """The SKUs a reservation found short (none for a capacity refusal)."""
    return [m.sku for m in exc.missing] if isinstance(exc, InsufficientStock) else []


def place(body: OrderIn, runtime: Runtime, key: str | None, on_decision: OnDecision) -> Reservation:
    """Route and reserve all lines atomically; if a concurrent order took the stock first,
    route once more on fresh availability. A replayed key returns the first answer."""
    request = body.model_dump(mode="json")
    digest = request_hash(body, request)
    with runtime.ledger.idempotent(key, digest) as claim:
        if claim is not None and claim.state == "replay":
            return Reservation(
                body.order_id, "placed", [], True, claim.response, claim.http_status or 201
            )
        for attempt in range(1, RESERVE_ATTEMPTS + 1):
            answer = decide(body, runtime)
            if not fillable(body, answer):
                metrics.RESERVATIONS.labels("unfillable").inc()
                raise unfillable(answer)
            hold = screening.hold_for(body, runtime, runtime.clock())

            def respond(
                res: Reservation, answer: dict[str, Any] = answer, hold: Hold | None = hold
            ) -> dict[str, Any]:
                return {
                    "order_id": res.order_id,
                    "status": res.status,
                    "allocations": [asdict(a) for a in res.allocations],
                    "decision": answer,
                    "hold": None
                    if hold is None
                    else {"reasons": list(hold.reasons), "expires_at": hold.expires_at.isoformat()},
                }

            try:
                res = runtime.ledger.reserve_order(
                    body.order_id,
                    allocation_requests(answer),
                    idempotency_key=key,
                    request_hash=digest,
                    plan={"request": request, "decision": answer},
                    response_builder=respond,
                    keep_claim=True,
                    hold=hold,
                    customer_id=body.customer_id,
                    destination_key=screening.destination_key(body.destination),
                )
            except (InsufficientStock, CapacityReached) as exc:
                runtime.forget_capacity_counts()  # the transaction counted afresh
                runtime.forget_stock(lost_skus(exc))  # and read the rows it lost on
                if attempt == RESERVE_ATTEMPTS:
                    metrics.RESERVATIONS.labels("conflict").inc()
                    raise
                continue
            metrics.RESERVATIONS.labels("replayed" if res.replayed else "reserved").inc()
            if not res.replayed:
                on_decision(body, answer, body.order_id)
            if res.response is None:
                return Reservation(
                    res.order_id, res.status, res.allocations, res.replayed, respond(res), 201
                )
            return res
    raise AssertionError("unreachable")


@dataclass
class RejectOutcome:
    """What a rejection did: the ledger's result and, if tried, the reroute."""

    rejection: RejectResult
    order: OrderView
    rerouted: bool = False
    decision: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


def reroute_body(view: OrderView, result: RejectResult) -> tuple[OrderIn, frozenset[str]]:
    """The original order cut down to the rejected lines, and every node that refused it."""
    original = OrderIn.model_validate(view.plan["request"])
    qty = {r.line_id: r.qty for r in result.reroute}
    lines = [
        ln.model_copy(update={"qty": qty[ln.line_id]}) for ln in original.lines if ln.line_id in qty
    ]
    refused = frozenset(a.node_id for a in view.allocations if a.status == "rejected")
    return original.model_copy(update={"lines": lines}), refused | {result.node_id}


def reject(
    order_id: str,
    node_id: str,
    line_ids: list[str],
    reason: RejectReason,
    runtime: Runtime,
    on_decision: OnDecision,
) -> RejectOutcome:
    """A node refused lines: release them, learn from the reason, reroute elsewhere."""
    result = runtime.ledger.reject_allocation(order_id, node_id, line_ids, reason)
    metrics.REJECTIONS.labels(reason).inc()
    runtime.reload_nodes()  # a capacity rejection closes the node for the day
    view = runtime.ledger.get_order(order_id)
    if result.order_status == "exception" or not result.reroute:
        metrics.REROUTES.labels("exception" if result.order_status == "exception" else "none").inc()
        return RejectOutcome(result, view)
    body, excluded = reroute_body(view, result)
    original = OrderIn.model_validate(view.plan["request"])
    try:
        if lifecycle.has_shipment_caps(original):
            # the caps span every line: route the whole unshipped order again, atomically
            answer = lifecycle.route_again(
                runtime, view, original, exclude=excluded, why=f"rejected:{reason}"
            )
            on_decision(original, answer, order_id)
            if answer["shippable"]:
                metrics.REROUTES.labels("rerouted").inc()
                return RejectOutcome(result, runtime.ledger.get_order(order_id), True, answer)
        else:
            answer = decide(body, runtime, exclude=excluded)
            on_decision(body, answer, order_id)
    except NoShipmentBudget as exc:
        metrics.REROUTES.labels("unfillable").inc()
        return RejectOutcome(result, view, details={"detail": exc.detail})
    except InsufficientStock as exc:
        metrics.REROUTES.labels("conflict").inc()
        return RejectOutcome(result, view, details={"missing": exc.extra.get("missing")})
    if not answer["shippable"]:
        metrics.REROUTES.labels("unfillable").inc()
        details = {"unallocated": answer.get("unallocated")}
        return RejectOutcome(result, view, decision=answer, details=details)
    try:
        runtime.ledger.reallocate(order_id, allocation_requests(answer))
    except (InsufficientStock, CapacityReached) as exc:
        runtime.forget_capacity_counts()
        runtime.forget_stock(lost_skus(exc))
        metrics.REROUTES.labels("conflict").inc()
        return RejectOutcome(result, view, details={"missing": exc.extra.get("missing", [])})
    metrics.REROUTES.labels("rerouted").inc()
    return RejectOutcome(result, runtime.ledger.get_order(order_id), True, answer)
