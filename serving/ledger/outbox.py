"""Transactional outbox: ``emit`` writes an event inside the caller's ledger transaction.

The event row, its per-subject sequence number and one pending delivery per configured webhook
endpoint commit or roll back together with the state change, so an acknowledged change always
has its event and a rolled-back one never does. The dispatcher (``serving.webhooks``) delivers.

Sequence numbers count per subject: an order's events are ``order_id`` 1, 2, 3, …; stock
events use ``stock:<node>/<sku>``. The order row (or the stock row) is locked by the caller,
so the ``max + 1`` read cannot race; the unique (subject, sequence) constraint backs that up.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from serving.ledger.tables import EVENT_TYPES, event_deliveries, events

_INFO_KEY = "routecast_outbox"
# built once: every ledger write emits, so the per-call expression building would show
_LAST_SEQUENCE = select(func.coalesce(func.max(events.c.sequence), 0)).where(
    events.c.subject == bindparam("subject")
)
_INSERT_EVENT = events.insert()
_INSERT_DELIVERIES = event_deliveries.insert()


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    """What the ledger needs to write events: endpoint names to queue for, and when stock is low."""

    endpoints: tuple[str, ...] = ()
    low_stock_threshold: int = 0  # available below this (and at or above it before) → event


def bind(conn: Connection, config: OutboxConfig) -> None:
    """Attach the outbox config to the transaction's connection (the ledger does this)."""
    conn.info[_INFO_KEY] = config


def config_of(conn: Connection) -> OutboxConfig:
    cfg = conn.info.get(_INFO_KEY)
    return cfg if isinstance(cfg, OutboxConfig) else OutboxConfig()


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def emit(
    conn: Connection,
    type_: str,
    data: dict[str, Any],
    *,
    at: datetime,
    order_id: str | None = None,
    subject: str | None = None,
    after: int | None = None,
) -> dict[str, Any]:
    """Write one event (and its pending deliveries) in the current transaction; returns the
    payload. ``after`` is the subject's last sequence when the caller knows it (0 for an
    order created in this transaction), saving the read of the log."""
    key = _subject(type_, order_id, subject)
    last = (
        after if after is not None else conn.execute(_LAST_SEQUENCE, {"subject": key}).scalar_one()
    )
    row = event_row(type_, data, at=at, order_id=order_id, subject=key, sequence=int(last) + 1)
    conn.execute(_INSERT_EVENT, row)
    queue(conn, [row["event_id"]], config_of(conn).endpoints, at=at)
    return dict(row["payload"])


def _subject(type_: str, order_id: str | None, subject: str | None) -> str:
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    key = subject or order_id
    if not key:
        raise ValueError("an event needs an order_id or a subject")
    return key


def event_row(
    type_: str,
    data: dict[str, Any],
    *,
    at: datetime,
    sequence: int,
    order_id: str | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """The ``events`` row of one event with the subject's ``sequence`` (``emit`` writes it;
    a caller that inserts it in its own statement must queue its deliveries too)."""
    key = _subject(type_, order_id, subject)
    event_id = new_event_id()
    payload = {
        "id": event_id,
        "type": type_,
        "timestamp": at.isoformat(),
        "subject": key,
        "sequence": sequence,
        "data": {"order_id": order_id, **data} if order_id else data,
    }
    return {
        "event_id": event_id,
        "type": type_,
        "subject": key,
        "sequence": sequence,
        "order_id": order_id,
        "payload": payload,
        "created_at": at,
    }


def queue(
    conn: Connection, event_ids: Sequence[str], endpoints: Sequence[str], *, at: datetime
) -> None:
    """Pending delivery rows for these events to these endpoints (new rows only)."""
    rows = [
        {
            "event_id": e,
            "endpoint": name,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": at,
            "updated_at": at,
        }
        for e in event_ids
        for name in endpoints
    ]
    if rows:
        conn.execute(_INSERT_DELIVERIES, rows)


def lines_json(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Allocation rows (or views) as event lines."""
    return [
        {"line_id": r.line_id, "node_id": r.node_id, "sku": r.sku, "qty": int(r.qty)} for r in rows
    ]


# -- reading and the delivery queue ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryView:
    endpoint: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventView:
    position: int
    event_id: str
    type: str
    subject: str
    sequence: int
    order_id: str | None
    payload: dict[str, Any]
    created_at: datetime
    deliveries: tuple[DeliveryView, ...]


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery: what the dispatcher sends, and to which endpoint."""

    event_id: str
    endpoint: str
    subject: str
    attempts: int
    payload: dict[str, Any]
    created_at: datetime


def _deliveries(conn: Connection, event_ids: Sequence[str]) -> dict[str, list[DeliveryView]]:
    out: dict[str, list[DeliveryView]] = {}
    if not event_ids:
        return out
    d = event_deliveries
    for r in conn.execute(
        select(d).where(d.c.event_id.in_(list(event_ids))).order_by(d.c.endpoint)
    ):
        out.setdefault(r.event_id, []).append(
            DeliveryView(
                endpoint=r.endpoint,
                status=r.status,
                attempts=int(r.attempts),
                next_attempt_at=r.next_attempt_at,
                last_status=r.last_status,
                last_error=r.last_error,
                delivered_at=r.delivered_at,
            )
        )
    return out


def list_events(
    conn: Connection,
    *,
    order_id: str | None = None,
    type_: str | None = None,
    delivery_status: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[EventView]:
    """Events in commit order (``position``), filtered; ``after`` pages by position."""
    q = select(events).where(events.c.position > after)
    if order_id is not None:
        q = q.where(events.c.order_id == order_id)
    if type_ is not None:
        q = q.where(events.c.type == type_)
    if delivery_status is not None:
        q = q.where(
            events.c.event_id.in_(
                select(event_deliveries.c.event_id).where(
                    event_deliveries.c.status == delivery_status
                )
            )
        )
    rows = list(conn.execute(q.order_by(events.c.position).limit(limit)))
    found = _deliveries(conn, [r.event_id for r in rows])
    return [_view(r, found.get(r.event_id, [])) for r in rows]


def _view(r: Any, deliveries: Sequence[DeliveryView]) -> EventView:
    return EventView(
        position=int(r.position),
        event_id=r.event_id,
        type=r.type,
        subject=r.subject,
        sequence=int(r.sequence),
        order_id=r.order_id,
        payload=r.payload,
        created_at=r.created_at,
        deliveries=tuple(deliveries),
    )


def get_event(conn: Connection, event_id: str) -> EventView | None:
    row = conn.execute(select(events).where(events.c.event_id == event_id)).one_or_none()
    if row is None:
        return None
    return _view(row, _deliveries(conn, [event_id]).get(event_id, []))


def redeliver(
    conn: Connection, event_id: str, endpoints: Sequence[str], *, at: datetime
) -> EventView | None:
    """Queue the event again for ``endpoints`` (delivered, dead or never queued): attempts reset."""
    if get_event(conn, event_id) is None:
        return None
    d = event_deliveries
    have = set(
        conn.execute(
            select(d.c.endpoint).where(d.c.event_id == event_id, d.c.endpoint.in_(list(endpoints)))
        ).scalars()
    )
    conn.execute(
        d.update()
        .where(d.c.event_id == event_id, d.c.endpoint.in_(list(have)))
        .values(status="pending", attempts=0, next_attempt_at=at, last_error=None, updated_at=at)
    )
    queue(conn, [event_id], [e for e in endpoints if e not in have], at=at)
    return get_event(conn, event_id)


def claim_due(
    conn: Connection, endpoints: Sequence[str], *, now: datetime, lease_until: datetime, limit: int
) -> list[DueDelivery]:
    """Lease up to ``limit`` due deliveries (oldest event first) so no other dispatcher takes them.

    The lease is the crash guard: a dispatcher killed after sending but before recording the
    answer leaves the row pending, and it is sent again once the lease runs out (at least once).
    """
    d, e = event_deliveries, events
    q = (
        select(d.c.event_id, d.c.endpoint, d.c.attempts, e.c.subject, e.c.payload, e.c.created_at)
        .join(e, e.c.event_id == d.c.event_id)
        .where(
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            d.c.endpoint.in_(list(endpoints)),
        )
        .order_by(e.c.position, d.c.endpoint)
        .limit(limit)
        .with_for_update(of=d, skip_locked=True)
    )
    rows = list(conn.execute(q))
    for r in rows:
        conn.execute(
            d.update()
            .where(d.c.event_id == r.event_id, d.c.endpoint == r.endpoint)
            .values(next_attempt_at=lease_until, updated_at=now)
        )
    return [
        DueDelivery(r.event_id, r.endpoint, r.subject, int(r.attempts), r.payload, r.created_at)
        for r in rows
    ]


def record_attempt(
    conn: Connection,
    event_id: str,
    endpoint: str,
    *,
    ok: bool,
    at: datetime,
    next_attempt_at: datetime | None,
    http_status: int | None,
    error: str | None,
) -> None:
    """Store one attempt's outcome: delivered, retry at ``next_attempt_at``, or dead (None)."""
    d = event_deliveries
    status = "delivered" if ok else ("pending" if next_attempt_at is not None else "dead")
    conn.execute(
        d.update()
        .where(d.c.event_id == event_id, d.c.endpoint == endpoint, d.c.status == "pending")
        .values(
            status=status,
            attempts=d.c.attempts + 1,
            next_attempt_at=next_attempt_at or at,
            last_status=http_status,
            last_error=None if ok else (error or "")[:500],
            delivered_at=at if ok else None,
            updated_at=at,
        )
    )


def defer(conn: Connection, event_id: str, endpoint: str, *, until: datetime, at: datetime) -> None:
    d = event_deliveries
    conn.execute(
        d.update()
        .where(d.c.event_id == event_id, d.c.endpoint == endpoint, d.c.status == "pending")
        .values(next_attempt_at=until, updated_at=at)
    )
