"""Delivery confirmations: a carrier's event marks one shipment delivered, once per event id.

The first confirmation of a shipment sets its ``delivered_at`` (the delivery-time label and the
fact a promise is checked against, recorded in ``promise_outcomes``); later events for the same shipment are kept as
``already_delivered`` without moving it, and a replayed event id answers ``duplicate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from serving.ledger import promise_outcomes
from serving.ledger.errors import DeliveryConflict, OrderNotFound, ShipmentNotFound
from serving.ledger.orders import lock_order
from serving.ledger.outbox import emit
from serving.ledger.records import DeliveryEvent, DeliveryOutcome, DeliveryResult
from serving.ledger.tables import deliveries, shipments


def _shipment_for(order_id: str, event: DeliveryEvent, i: int, rows: Sequence[Any]) -> Any:
    where = f"deliveries[{i}]"
    if event.shipment_id is not None:
        match = [r for r in rows if r.shipment_id == event.shipment_id]
        if not match:
            raise ShipmentNotFound(
                order_id, f"{where}.shipment_id", f"no shipment {event.shipment_id!r}"
            )
        return match[0]
    if event.tracking_number is not None:
        match = [r for r in rows if r.tracking_number == event.tracking_number]
        if event.carrier is not None:
            match = [r for r in match if r.carrier in (None, event.carrier)]
        if not match and len(rows) == 1 and rows[0].tracking_number is None:
            match = list(rows)  # the order's only parcel, shipped before its number was known
        if len(match) != 1:
            what = "no shipment" if not match else f"{len(match)} shipments"
            raise ShipmentNotFound(
                order_id,
                f"{where}.tracking_number",
                f"{what} with tracking number {event.tracking_number!r}",
            )
        return match[0]
    if len(rows) != 1:
        raise ShipmentNotFound(
            order_id,
            f"{where}.shipment_id",
            f"the order has {len(rows)} shipments and the delivery names none of them",
        )
    return rows[0]


def _check_agrees(event: DeliveryEvent, i: int, ship: Any) -> None:
    where = f"deliveries[{i}]"
    if event.carrier is not None and ship.carrier not in (None, event.carrier):
        raise DeliveryConflict(
            f"{where}.carrier",
            f"shipment {ship.shipment_id!r} left with carrier {ship.carrier!r}, "
            f"not {event.carrier!r}; send the carrier it shipped with",
        )
    if event.tracking_number is not None and ship.tracking_number not in (
        None,
        event.tracking_number,
    ):
        raise DeliveryConflict(
            f"{where}.tracking_number",
            f"shipment {ship.shipment_id!r} has tracking number {ship.tracking_number!r}, "
            f"not {event.tracking_number!r}",
        )
    if event.delivered_at < ship.shipped_at:
        raise DeliveryConflict(
            f"{where}.delivered_at",
            f"{event.delivered_at.isoformat()} is before shipment {ship.shipment_id!r} shipped "
            f"({ship.shipped_at.isoformat()}); send the time the parcel was delivered",
        )


def _same(event: DeliveryEvent, stored: Any) -> bool:
    return (
        stored.delivered_at == event.delivered_at
        and (event.shipment_id is None or stored.shipment_id == event.shipment_id)
        and (event.carrier is None or stored.carrier == event.carrier)
        and (event.tracking_number is None or stored.tracking_number == event.tracking_number)
    )


def confirm(
    conn: Connection, order_id: str, events: Sequence[DeliveryEvent], *, at: datetime
) -> list[DeliveryResult]:
    """Apply delivery events of one order, all or none (a bad one refuses the batch)."""
    order = lock_order(conn, order_id)
    if order is None:
        raise OrderNotFound(order_id)
    rows = {
        r.shipment_id: r
        for r in conn.execute(
            select(shipments)
            .where(shipments.c.order_id == order_id)
            .order_by(shipments.c.shipment_id)
            .with_for_update()
        )
    }
    seen = {
        r.event_id: r
        for r in conn.execute(
            select(deliveries).where(deliveries.c.event_id.in_([e.event_id for e in events]))
        )
    }
    delivered: dict[str, datetime] = {
        sid: r.delivered_at for sid, r in rows.items() if r.delivered_at is not None
    }
    out: list[DeliveryResult] = []
    for i, event in enumerate(events):
        stored = seen.get(event.event_id)
        if stored is not None:
            if stored.order_id != order_id or not _same(event, stored):
                raise DeliveryConflict(
                    f"deliveries[{i}].event_id",
                    f"event {event.event_id!r} was already received with other content; "
                    "use a new event id for a new event",
                    event_id=event.event_id,
                )
            out.append(
                DeliveryResult(event.event_id, stored.shipment_id, "duplicate", stored.delivered_at)
            )
            continue
        ship = _shipment_for(order_id, event, i, list(rows.values()))
        _check_agrees(event, i, ship)
        sid = ship.shipment_id
        first = sid not in delivered
        outcome: DeliveryOutcome = "applied" if first else "already_delivered"
        conn.execute(
            deliveries.insert().values(
                event_id=event.event_id,
                order_id=order_id,
                shipment_id=sid,
                delivered_at=event.delivered_at,
                carrier=event.carrier or ship.carrier,
                tracking_number=event.tracking_number or ship.tracking_number,
                outcome=outcome,
                received_at=at,
            )
        )
        seen[event.event_id] = conn.execute(
            select(deliveries).where(deliveries.c.event_id == event.event_id)
        ).one()
        if first:
            conn.execute(
                update(shipments)
                .where(shipments.c.shipment_id == sid)
                .values(
                    delivered_at=event.delivered_at,
                    delivery_event_id=event.event_id,
                    carrier=ship.carrier or event.carrier,
                    tracking_number=ship.tracking_number or event.tracking_number,
                    updated_at=at,
                )
            )
            delivered[sid] = event.delivered_at
            kept = promise_outcomes.outcome_of(
                order.plan, sid, order_id, ship.node_id, event.delivered_at
            )
            if kept is not None:
                promise_outcomes.record(conn, kept)
            emit(
                conn,
                "delivery.confirmed",
                {
                    "shipment_id": sid,
                    "node_id": ship.node_id,
                    "carrier": ship.carrier or event.carrier,
                    "tracking_number": ship.tracking_number or event.tracking_number,
                    "delivered_at": event.delivered_at.isoformat(),
                    "carrier_event_id": event.event_id,
                },
                at=at,
                order_id=order_id,
            )
        out.append(
            DeliveryResult(
                event.event_id, sid, outcome, delivered[sid] if not first else event.delivered_at
            )
        )
    return out
