"""Orders: place (route + reserve atomically, idempotent), read, cancel, ship, reject + reroute."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header
from fastapi.responses import JSONResponse

from serving import metrics
from serving.decide import decide
from serving.deps import RuntimeDep
from serving.ledger import (
    AllocationRequest,
    DeliveryEvent,
    InsufficientStock,
    OrderView,
    Reservation,
)
from serving.problems import RoutecastError
from serving.routers.route import audit
from serving.runtime import Runtime
from serving.schemas.operations import DeliveriesIn, RejectionIn, ShipmentIn
from serving.schemas.order import OrderIn
from serving.security import OrdersScope

router = APIRouter(prefix="/v1/orders", tags=["orders"])
log = logging.getLogger("routecast.orders")


class Unfillable(RoutecastError):
    status, type, title = 409, "unfillable", "Order cannot be filled"


def request_hash(body: OrderIn) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def order_json(view: OrderView) -> dict[str, Any]:
    return {
        "order_id": view.order_id,
        "status": view.status,
        "rejections": view.rejections,
        "created_at": view.created_at.isoformat(),
        "allocations": [asdict(a) for a in view.allocations],
        "shipments": [
            {
                **asdict(s),
                "shipped_at": s.shipped_at.isoformat(),
                "delivered_at": s.delivered_at.isoformat() if s.delivered_at else None,
            }
            for s in view.shipments
        ],
        "decision": view.plan.get("decision"),
    }


def _requests(answer: dict[str, Any]) -> list[AllocationRequest]:
    return [
        AllocationRequest(
            line_id=a["line_id"], node_id=a["node_id"], sku=a["sku"], qty=int(a["qty"])
        )
        for a in answer["allocations"]
    ]


def _unfillable(answer: dict[str, Any]) -> Unfillable:
    missing = answer.get("unallocated") or []
    what = ", ".join(f"{m['sku']} x{m['qty']:g}" for m in missing) or "some lines"
    return Unfillable(
        f"cannot fill {what} from available stock; nothing was reserved. "
        "Allow partial fulfilment (allow_partial) or adjust inventory.",
        unallocated=missing,
        decision_id=answer["decision_id"],
    )


def _place(body: OrderIn, runtime: Runtime, key: str | None, digest: str) -> Reservation:
    """Route and reserve; if a concurrent order took the stock first, route once more."""
    for attempt in (1, 2):
        answer = decide(body, runtime)
        if not answer["allocations"] or (not answer["shippable"] and not body.allow_partial):
            metrics.RESERVATIONS.labels("unfillable").inc()
            raise _unfillable(answer)

        def respond(res: Reservation, answer: dict[str, Any] = answer) -> dict[str, Any]:
            return {
                "order_id": res.order_id,
                "status": res.status,
                "allocations": [asdict(a) for a in res.allocations],
                "decision": answer,
            }

        try:
            res = runtime.ledger.reserve_order(
                body.order_id,
                _requests(answer),
                idempotency_key=key,
                request_hash=digest,
                plan={"request": body.model_dump(mode="json"), "decision": answer},
                response_builder=respond,
            )
        except InsufficientStock:
            if attempt == 2:
                metrics.RESERVATIONS.labels("conflict").inc()
                raise
            if key is not None:
                runtime.ledger.begin_idempotent(
                    key, digest
                )  # re-claim after the ledger released it
            continue
        metrics.RESERVATIONS.labels("replayed" if res.replayed else "reserved").inc()
        return (
            res
            if res.response is not None
            else Reservation(
                res.order_id, res.status, res.allocations, res.replayed, respond(res), 201
            )
        )
    raise AssertionError("unreachable")


@router.post("", status_code=201, summary="Place an order: route and reserve all lines atomically")
def place_order(
    body: OrderIn,
    runtime: RuntimeDep,
    _: OrdersScope,
    tasks: BackgroundTasks,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONResponse:
    """Same `Idempotency-Key` + same body → the first answer; + different body → 422;
    while the first is still running → 409. An unfillable order reserves nothing (409)."""
    digest = request_hash(body)
    if idempotency_key is not None:
        state = runtime.ledger.begin_idempotent(idempotency_key, digest)
        if state.state == "replay":
            return JSONResponse(
                state.response,
                status_code=state.http_status or 201,
                headers={"Idempotent-Replayed": "true"},
            )
    try:
        res = _place(body, runtime, idempotency_key, digest)
    except Exception:
        if idempotency_key is not None:
            runtime.ledger.release_idempotent(idempotency_key, digest)
        raise
    payload = res.response or {}
    decision = payload.get("decision") or {}
    if not res.replayed and decision:
        tasks.add_task(audit, runtime, body, decision, body.order_id)
    log.info(
        "order placed",
        extra={"order_id": body.order_id, "decision_id": decision.get("decision_id")},
    )
    headers = {"Idempotent-Replayed": "true"} if res.replayed else {}
    return JSONResponse(payload, status_code=res.http_status or 201, headers=headers)


@router.get("/{order_id}")
def get_order(order_id: str, runtime: RuntimeDep, _: OrdersScope) -> dict[str, Any]:
    return order_json(runtime.ledger.get_order(order_id))


@router.post("/{order_id}/cancel")
def cancel_order(order_id: str, runtime: RuntimeDep, _: OrdersScope) -> dict[str, Any]:
    """Release every reservation of the order (shipped lines stay shipped)."""
    return order_json(runtime.ledger.cancel_order(order_id))


@router.post("/{order_id}/shipments")
def ship_order(
    order_id: str, body: ShipmentIn, runtime: RuntimeDep, _: OrdersScope
) -> dict[str, Any]:
    """Turn reservations into deductions for the given (or all) lines; one shipment per node
    keeps the carrier and tracking number."""
    return order_json(
        runtime.ledger.ship_order(
            order_id,
            body.line_ids,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            shipped_at=body.shipped_at,
        )
    )


@router.post("/{order_id}/deliveries")
def confirm_deliveries(
    order_id: str, body: DeliveriesIn, runtime: RuntimeDep, _: OrdersScope
) -> dict[str, Any]:
    """Carrier delivery confirmations, per shipment; resending an event id changes nothing."""
    results = runtime.ledger.confirm_deliveries(
        order_id,
        [
            DeliveryEvent(
                event_id=d.event_id,
                delivered_at=d.delivered_at,
                shipment_id=d.shipment_id,
                carrier=d.carrier,
                tracking_number=d.tracking_number,
            )
            for d in body.deliveries
        ],
    )
    for r in results:
        metrics.DELIVERIES.labels(r.outcome).inc()
    return {
        "order_id": order_id,
        "deliveries": [{**asdict(r), "delivered_at": r.delivered_at.isoformat()} for r in results],
        "order": order_json(runtime.ledger.get_order(order_id)),
    }


@router.post("/{order_id}/rejections")
def reject(
    order_id: str,
    body: RejectionIn,
    runtime: RuntimeDep,
    _: OrdersScope,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    """A node refused lines: release them, learn from the reason, reroute elsewhere."""
    result = runtime.ledger.reject_allocation(order_id, body.node_id, body.line_ids, body.reason)
    metrics.REJECTIONS.labels(body.reason).inc()
    runtime.reload_nodes()  # a capacity rejection closes the node for the day
    view = runtime.ledger.get_order(order_id)
    out: dict[str, Any] = {
        "rejection": {
            "node_id": body.node_id,
            "reason": body.reason,
            "rejections": result.rejections,
        }
    }
    if result.order_status == "exception" or not result.reroute:
        metrics.REROUTES.labels("exception" if result.order_status == "exception" else "none").inc()
        return {**out, "rerouted": False, "order": order_json(view)}
    original = OrderIn.model_validate(view.plan["request"])
    qty = {r.line_id: r.qty for r in result.reroute}
    lines = [
        ln.model_copy(update={"qty": qty[ln.line_id]}) for ln in original.lines if ln.line_id in qty
    ]
    excluded = frozenset(a.node_id for a in view.allocations if a.status == "rejected") | {
        body.node_id
    }
    reroute_body = original.model_copy(update={"lines": lines})
    answer = decide(reroute_body, runtime, exclude=excluded)
    tasks.add_task(audit, runtime, reroute_body, answer, order_id)
    if not answer["shippable"]:
        metrics.REROUTES.labels("unfillable").inc()
        return {
            **out,
            "rerouted": False,
            "unallocated": answer.get("unallocated"),
            "decision": answer,
            "order": order_json(view),
        }
    try:
        runtime.ledger.reallocate(order_id, _requests(answer))
    except InsufficientStock as exc:
        metrics.REROUTES.labels("conflict").inc()
        return {
            **out,
            "rerouted": False,
            "missing": exc.extra.get("missing"),
            "order": order_json(view),
        }
    metrics.REROUTES.labels("rerouted").inc()
    return {
        **out,
        "rerouted": True,
        "decision": answer,
        "order": order_json(runtime.ledger.get_order(order_id)),
    }
