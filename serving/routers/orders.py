"""Orders over HTTP: parse, call ``serving.orchestration`` or the ledger, answer."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Response

from serving import metrics, orchestration
from serving.bounds import ID_PATTERN, MAX_ID, MAX_LONG_ID, AwareTime, PathLongId
from serving.deps import DecisionRoute, LedgerDep, PromisesDep, RuntimeDep
from serving.ledger import (
    DeliveryEvent,
    OrderView,
)
from serving.ledger.records import OrderStatus
from serving.ledger.reporting import OrderFilter
from serving.routers.route import audit_soon, json_response
from serving.runtime import Runtime
from serving.schemas.operations import DeliveriesIn, RejectionIn, ShipmentIn
from serving.schemas.order import OrderIn
from serving.security import OrdersScope

router = APIRouter(prefix="/v1/orders", tags=["orders"], route_class=DecisionRoute)
log = logging.getLogger("routecast.orders")


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
        "hold": None
        if not view.hold_reasons
        else {
            "reasons": view.hold_reasons,
            "expires_at": view.hold_expires_at.isoformat() if view.hold_expires_at else None,
            "released": view.status != "held",
        },
    }


@router.post("", status_code=201, summary="Place an order: route and reserve all lines atomically")
def place_order(
    body: OrderIn,
    runtime: RuntimeDep,
    _: OrdersScope,
    tasks: BackgroundTasks,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="Retry-safe placement: the same key and body return the first answer",
        ),
    ] = None,
) -> Response:
    """Same `Idempotency-Key` + same body → the first answer; + different body → 422;
    while the first is still running → 409. An unfillable order reserves nothing (409)."""
    res = orchestration.place(body, runtime, idempotency_key, _audit_later(tasks, runtime))
    payload = res.response or {}
    log.info(
        "order placed",
        extra={
            "order_id": body.order_id,
            "decision_id": (payload.get("decision") or {}).get("decision_id"),
        },
    )
    headers = {"Idempotent-Replayed": "true"} if res.replayed else {}
    return json_response(payload, res.http_status or 201, headers)


@router.get("", summary="Search orders by id prefix, state, channel, node and placing time")
def search_orders(
    ledger: LedgerDep,
    _: OrdersScope,
    order_id: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_LONG_ID, pattern=ID_PATTERN, description="id prefix"),
    ] = None,
    status: Annotated[OrderStatus | None, Query()] = None,
    channel: Annotated[
        str | None, Query(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    ] = None,
    node_id: Annotated[
        str | None, Query(min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    ] = None,
    placed_from: Annotated[AwareTime | None, Query()] = None,
    placed_to: Annotated[AwareTime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Newest first; the console's order search runs the same query."""
    rows = ledger.search_orders(
        OrderFilter(order_id, status, channel, node_id, placed_from, placed_to), limit=limit
    )
    return [{**asdict(r), "created_at": r.created_at.isoformat()} for r in rows]


@router.get("/{order_id}")
def get_order(order_id: PathLongId, ledger: LedgerDep, _: OrdersScope) -> dict[str, Any]:
    return order_json(ledger.get_order(order_id))


@router.post("/{order_id}/release", summary="Release a held order to its nodes")
def release_order(order_id: str, ledger: LedgerDep, _: OrdersScope) -> dict[str, Any]:
    """A screened order was checked and is good: its reserved stock goes to the nodes."""
    return order_json(ledger.release_hold(order_id))


@router.post("/{order_id}/cancel")
def cancel_order(order_id: PathLongId, ledger: LedgerDep, _: OrdersScope) -> dict[str, Any]:
    """Release every reservation of the order (shipped lines stay shipped)."""
    return order_json(ledger.cancel_order(order_id))


@router.post("/{order_id}/shipments")
def ship_order(
    order_id: PathLongId, body: ShipmentIn, ledger: LedgerDep, _: OrdersScope
) -> dict[str, Any]:
    """Turn reservations into deductions for the given (or all) lines; one shipment per node
    keeps the carrier and tracking number."""
    return order_json(
        ledger.ship_order(
            order_id,
            body.line_ids,
            carrier=body.carrier,
            tracking_number=body.tracking_number,
            shipped_at=body.shipped_at,
        )
    )


@router.post("/{order_id}/deliveries")
def confirm_deliveries(
    order_id: PathLongId,
    body: DeliveriesIn,
    ledger: LedgerDep,
    promises: PromisesDep,
    _: OrdersScope,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    """Carrier delivery confirmations, per shipment; resending an event id changes nothing.
    Each first confirmation is checked against its promise; the lane's P90 widens when its
    coverage falls below target (after the answer is sent)."""
    results = ledger.confirm_deliveries(
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
    tasks.add_task(
        promises.observe_shipments, [r.shipment_id for r in results if r.outcome == "applied"]
    )
    return {
        "order_id": order_id,
        "deliveries": [{**asdict(r), "delivered_at": r.delivered_at.isoformat()} for r in results],
        "order": order_json(ledger.get_order(order_id)),
    }


@router.post("/{order_id}/rejections")
def reject(
    order_id: PathLongId,
    body: RejectionIn,
    runtime: RuntimeDep,
    _: OrdersScope,
    tasks: BackgroundTasks,
) -> dict[str, Any]:
    """A node refused lines: release them, learn from the reason, reroute elsewhere."""
    done = orchestration.reject(
        order_id, body.node_id, body.line_ids, body.reason, runtime, _audit_later(tasks, runtime)
    )
    rejection = {"node_id": body.node_id, "reason": body.reason}
    return {
        "rejection": {**rejection, "rejections": done.rejection.rejections},
        "rerouted": done.rerouted,
        **done.details,
        **({"decision": done.decision} if done.decision is not None else {}),
        "order": order_json(done.order),
    }


def _audit_later(tasks: BackgroundTasks, runtime: Runtime) -> orchestration.OnDecision:
    """Audit each decision after the answer is sent."""

    def later(body: OrderIn, answer: dict[str, Any], order_id: str) -> None:
        tasks.add_task(audit_soon, runtime, body, answer, order_id)

    return later
