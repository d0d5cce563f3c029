"""Order-side operations inside one transaction: reserve, reallocate, cancel, ship, reject.

Each function takes an open write transaction's connection; ``Ledger`` owns the transaction,
so every function's writes commit or roll back together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Integer, Select, String, bindparam, func, select, text, update
from sqlalchemy import column as sql_column
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update

from routing.domain import RejectReason
from routing.rejections import becomes_exception, closes_node, stock_to_drop
from serving.ledger import outbox
from serving.ledger.errors import (
    AllocationNotFound,
    CancelQtyTooLarge,
    CapacityReached,
    InsufficientStock,
    InvalidLedgerRequest,
    LineAlreadyShipped,
    OrderChanged,
    OrderExists,
    OrderNotFound,
    OrderStateError,
    Shortage,
)
from serving.ledger.outbox import emit, lines_json
from serving.ledger.records import (
    AllocationRequest,
    AllocationStatus,
    AllocationView,
    Hold,
    OrderStatus,
    OrderView,
    RejectResult,
    RerouteLine,
    ShipmentView,
)
from serving.ledger.stock_ops import (
    Key,
    StockRefused,
    StockState,
    insert_ignore,
    lock_rows,
    move,
    release_rows,
    reserve_rows,
)
from serving.ledger.tables import events, nodes, order_allocations, orders, shipments

OPEN_STATUSES: tuple[OrderStatus, ...] = ("placed", "partially_shipped")
#: Allocations that use a node's daily capacity (released = cancelled, rejected = refused).
CAPACITY_STATUSES = ("reserved", "shipped")

# The statements every order runs are built once and executed with bound parameters
# (building a SQLAlchemy expression per call costs more than running it on SQLite).
oa = order_allocations
_ORDER = select(orders).where(orders.c.order_id == bindparam("order_id"))
_LOCK_ORDER = _ORDER.with_for_update()
_ALLOCATIONS = select(oa).where(oa.c.order_id == bindparam("order_id")).order_by(oa.c.allocation_id)
_ALLOCATION_STATUSES = select(oa.c.status).where(oa.c.order_id == bindparam("order_id")).distinct()
_SHIPPED_LINES = (
    select(oa.c.shipment_id, oa.c.line_id)
    .where(oa.c.order_id == bindparam("order_id"), oa.c.shipment_id.is_not(None))
    .order_by(oa.c.allocation_id)
)
_SHIPMENTS = (
    select(shipments)
    .where(shipments.c.order_id == bindparam("order_id"))
    .order_by(shipments.c.shipped_at, shipments.c.shipment_id)
)


def _insert_order(conn: Connection) -> Any:
    """``INSERT INTO orders ... ON CONFLICT DO NOTHING RETURNING order_id``, once per dialect."""
    return _insert_order_returning(conn.dialect.name, insert_ignore(conn, orders))


@cache
def _insert_order_returning(dialect: str, base: Any) -> Any:
    return base.returning(orders.c.order_id)


_INSERT_ALLOCATIONS_RETURNING = oa.insert().returning(
    oa.c.allocation_id, sort_by_parameter_order=True
)
_INSERT_SHIPMENT = shipments.insert()
_FINISH_ALLOCATIONS = (
    update(oa)
    .where(oa.c.allocation_id.in_(bindparam("ids", expanding=True)))
    .values(
        status=bindparam("v_status"),
        reason=bindparam("v_reason"),
        updated_at=bindparam("v_at", type_=oa.c.updated_at.type),
        shipment_id=bindparam("v_shipment"),
    )
)


@cache
def _reserved_query(by_node: bool, by_lines: bool) -> Select[Any]:
    query = select(oa).where(oa.c.order_id == bindparam("order_id"), oa.c.status == "reserved")
    if by_node:
        query = query.where(oa.c.node_id == bindparam("node_id"))
    if by_lines:
        query = query.where(oa.c.line_id.in_(bindparam("line_ids", expanding=True)))
    return query.order_by(oa.c.allocation_id)


@cache
def _orders_taken_query(excluding: bool) -> Select[Any]:
    query = select(func.count(func.distinct(oa.c.order_id))).where(
        oa.c.node_id == bindparam("node_id"),
        oa.c.created_at >= bindparam("since", type_=oa.c.created_at.type),
        oa.c.status.in_(CAPACITY_STATUSES),
    )
    if excluding:
        query = query.where(oa.c.order_id != bindparam("excluding"))
    return query


@cache
def _capacity_limited_query(some: bool, lock: bool) -> Select[Any]:
    query = (
        select(nodes.c.node_id, nodes.c.timezone, nodes.c.daily_capacity)
        .where(nodes.c.daily_capacity > 0)
        .order_by(nodes.c.node_id)
    )
    if some:
        query = query.where(nodes.c.node_id.in_(bindparam("node_ids", expanding=True)))
    # FOR NO KEY UPDATE: exclusive among writers as FOR UPDATE is, but it lets the key-share
    # locks of foreign keys through: a reservation writes its allocation rows (which
    # key-share their node's row) before it waits for the stock rows, and a FOR UPDATE here
    # would wait on that writer while holding the stock rows it waits for (a deadlock).
    return query.with_for_update(key_share=True) if lock else query


def lock_order(conn: Connection, order_id: str) -> Any:
    return conn.execute(_LOCK_ORDER, {"order_id": order_id}).one_or_none()


def _joined_columns(a_status: Any, *extra: Any) -> tuple[Any, ...]:
    """The columns of an order row joined with its allocation rows (one per allocation, or
    one with no allocation), in this order: the order's, ``extra``, the allocation's with its
    status named ``a_status`` (the order has a status too)."""
    return (
        orders.c.order_id,
        orders.c.status,
        orders.c.request_hash,
        orders.c.plan,
        orders.c.rejections,
        orders.c.created_at,
        orders.c.hold_reasons,
        orders.c.hold_expires_at,
        *extra,
        oa.c.allocation_id,
        oa.c.line_id,
        oa.c.node_id,
        oa.c.sku,
        oa.c.qty,
        a_status,
        oa.c.reason,
        oa.c.shipment_id,
    )


def _joined_allocations(rows: Sequence[Any]) -> list[AllocationView]:
    """The allocations of joined rows (``_joined_columns``): none when the order has none."""
    return [_allocation(r, r.a_status) for r in rows if r.allocation_id is not None]


# PostgreSQL: the order row locked, its allocations and its last event sequence in one
# statement (two round trips less for a cancel). The allocations and the sequence are read
# by VOLATILE functions (migration 0013) called per locked row, so they are what was
# committed before the lock was granted: read in the same statement directly, they would be
# as of its start, before a writer the lock waited for (a shipment) committed.
_LOCK_ORDER_ALLOCATIONS_PG = text(
    """
WITH o AS (
    SELECT order_id, status, request_hash, plan, rejections, created_at, hold_reasons,
        hold_expires_at
    FROM orders WHERE order_id = :order_id FOR UPDATE
)
SELECT o.*, ledger_last_sequence(o.order_id) AS last_sequence, a.allocation_id, a.line_id,
    a.node_id, a.sku, a.qty, a.status AS a_status, a.reason, a.shipment_id
FROM o LEFT JOIN LATERAL ledger_order_allocations(o.order_id) AS a ON true
ORDER BY a.allocation_id
"""
).columns(*_joined_columns(sql_column("a_status", String), sql_column("last_sequence", Integer)))


# PostgreSQL: a cancel's writes before its stock release in one statement (allocations
# released, the order's status, and its order.cancelled event when no webhook endpoint needs
# delivery rows queued beside it).
_CANCEL_PG = text(
    """
WITH f AS (
    UPDATE order_allocations SET status = 'released', reason = :reason, updated_at = :at,
        shipment_id = NULL
    WHERE allocation_id = ANY(CAST(:ids AS bigint[]))
), s AS (
    UPDATE orders SET status = :status, updated_at = :at WHERE order_id = :order_id
), e AS (
    INSERT INTO events (event_id, type, subject, sequence, order_id, payload, created_at)
    SELECT :event_id, :event_type, :order_id, :sequence, :order_id, :event_payload, :at
    WHERE :with_event
)
SELECT 1
"""
).bindparams(
    bindparam("event_payload", type_=events.c.payload.type),
    bindparam("at", type_=orders.c.updated_at.type),
)


def lock_order_with_allocations(
    conn: Connection, order_id: str
) -> tuple[Any, list[AllocationView]]:
    """The order row, locked (``None`` if absent), and its allocations by id."""
    if conn.dialect.name != "postgresql":
        row = lock_order(conn, order_id)
        return row, allocations_of(conn, order_id) if row is not None else []
    rows = conn.execute(_LOCK_ORDER_ALLOCATIONS_PG, {"order_id": order_id}).all()
    if not rows:
        return None, []
    return rows[0], _joined_allocations(rows)


# An order and its allocations in one read (an idempotent replay, a status read): one
# statement, one snapshot, instead of two.
_ORDER_WITH_ALLOCATIONS = (
    select(*_joined_columns(oa.c.status.label("a_status")))
    .select_from(orders.outerjoin(oa, oa.c.order_id == orders.c.order_id))
    .where(orders.c.order_id == bindparam("order_id"))
    .order_by(oa.c.allocation_id)
)


def order_view(conn: Connection, order_id: str) -> OrderView:
    rows = conn.execute(_ORDER_WITH_ALLOCATIONS, {"order_id": order_id}).all()
    if not rows:
        raise OrderNotFound(order_id)
    return _view_of(conn, rows[0], rows[0].status, _joined_allocations(rows))


def _view_of(
    conn: Connection, row: Any, status: OrderStatus, allocations: list[AllocationView]
) -> OrderView:
    """The order as ``row`` (read in this transaction) with ``status`` and ``allocations``;
    its shipments are read only when an allocation names one (every shipment has its
    shipped allocations)."""
    shipped = any(a.shipment_id is not None for a in allocations)
    return OrderView(
        order_id=row.order_id,
        status=status,
        request_hash=row.request_hash,
        plan=row.plan,
        rejections=row.rejections,
        created_at=row.created_at,
        allocations=allocations,
        shipments=shipments_of(conn, row.order_id) if shipped else [],
        hold_reasons=row.hold_reasons,
        hold_expires_at=row.hold_expires_at,
    )


def allocations_of(conn: Connection, order_id: str) -> list[AllocationView]:
    rows = conn.execute(_ALLOCATIONS, {"order_id": order_id})
    return [_allocation(r, r.status) for r in rows]


def _allocation(r: Any, status: AllocationStatus) -> AllocationView:
    """An allocation row as its view (``status`` named apart: joined rows carry two)."""
    return AllocationView(
        allocation_id=r.allocation_id,
        line_id=r.line_id,
        node_id=r.node_id,
        sku=r.sku,
        qty=int(r.qty),
        status=status,
        reason=r.reason,
        shipment_id=r.shipment_id,
    )


def shipments_of(conn: Connection, order_id: str) -> list[ShipmentView]:
    lines: dict[str, list[str]] = defaultdict(list)
    for sid, line_id in conn.execute(_SHIPPED_LINES, {"order_id": order_id}):
        lines[sid].append(line_id)
    rows = conn.execute(_SHIPMENTS, {"order_id": order_id})
    return [
        ShipmentView(
            shipment_id=r.shipment_id,
            node_id=r.node_id,
            line_ids=lines.get(r.shipment_id, []),
            carrier=r.carrier,
            tracking_number=r.tracking_number,
            shipped_at=r.shipped_at,
            delivered_at=r.delivered_at,
        )
        for r in rows
    ]


def _needs(allocations: Iterable[AllocationRequest | AllocationView]) -> dict[Key, int]:
    need: dict[Key, int] = defaultdict(int)
    for a in allocations:
        need[(a.node_id, a.sku)] += a.qty
    return dict(need)


def reserve_lines(
    conn: Connection,
    order_id: str,
    allocations: Sequence[AllocationRequest],
    *,
    at: datetime,
) -> list[int]:
    """Reserve every allocation or raise ``InsufficientStock`` naming all shortages; returns
    the new allocation ids in the order of ``allocations``. A refusal raises, and the
    transaction rolls all of it back."""
    ids = _insert_allocations(conn, order_id, allocations, at)
    _reserve_stock(conn, order_id, _needs(allocations), at)
    return ids


def _insert_allocations(
    conn: Connection, order_id: str, allocations: Sequence[AllocationRequest], at: datetime
) -> list[int]:
    """The allocation rows, reserved: they need no stock lock, so they go in first."""
    return list(
        conn.execute(
            _INSERT_ALLOCATIONS_RETURNING,
            [
                {
                    "order_id": order_id,
                    "line_id": a.line_id,
                    "node_id": a.node_id,
                    "sku": a.sku,
                    "qty": a.qty,
                    "status": "reserved",
                    "created_at": at,
                    "updated_at": at,
                }
                for a in allocations
            ],
        ).scalars()
    )


# PostgreSQL: the order row, its allocation rows and (without webhook endpoints to queue
# for) its ``order.placed`` event in one statement, two round trips less per placement;
# nothing but the attempted order row when the order id already existed.
_PLACE_PG = (
    text(
        """
WITH o AS (
    INSERT INTO orders (order_id, status, request_hash, plan, rejections, created_at,
        updated_at, hold_reasons, hold_expires_at, customer_id, destination_key)
    VALUES (:order_id, :status, :request_hash, :plan, :rejections, :created_at, :updated_at,
        :hold_reasons, :hold_expires_at, :customer_id, :destination_key)
    ON CONFLICT DO NOTHING
    RETURNING order_id
), al AS (
    INSERT INTO order_allocations (order_id, line_id, node_id, sku, qty, status, created_at,
    updated_at)
SELECT o.order_id, a.line_id, a.node_id, a.sku, a.qty, 'reserved', :created_at, :created_at
FROM o, unnest(CAST(:lines AS text[]), CAST(:nodes AS text[]), CAST(:skus AS text[]),
    CAST(:qtys AS bigint[])) WITH ORDINALITY AS a(line_id, node_id, sku, qty, n)
ORDER BY a.n
RETURNING allocation_id
), e AS (
    INSERT INTO events (event_id, type, subject, sequence, order_id, payload, created_at)
    SELECT :event_id, :event_type, o.order_id, 1, o.order_id, :event_payload, :created_at
    FROM o WHERE :with_event
)
SELECT allocation_id FROM al
"""
    )
    .bindparams(
        bindparam("event_payload", type_=events.c.payload.type),
        bindparam("plan", type_=orders.c.plan.type),
        bindparam("hold_reasons", type_=orders.c.hold_reasons.type),
        bindparam("created_at", type_=orders.c.created_at.type),
        bindparam("updated_at", type_=orders.c.updated_at.type),
        bindparam("hold_expires_at", type_=orders.c.hold_expires_at.type),
    )
    .columns(oa.c.allocation_id)
)


def _insert_order_and_allocations_pg(
    conn: Connection,
    row: dict[str, Any],
    allocations: Sequence[AllocationRequest],
    event: dict[str, Any] | None,
) -> list[int] | None:
    """The new order's allocation ids in the order of ``allocations`` (rows are numbered in
    the order inserted), or ``None`` when the order id already existed; ``event`` (an
    ``outbox.event_row``, sequence 1) goes in with them."""
    ids = conn.execute(
        _PLACE_PG,
        {
            **row,
            "with_event": event is not None,
            "event_id": event["event_id"] if event else None,
            "event_type": event["type"] if event else None,
            "event_payload": event["payload"] if event else None,
            "lines": [a.line_id for a in allocations],
            "nodes": [a.node_id for a in allocations],
            "skus": [a.sku for a in allocations],
            "qtys": [a.qty for a in allocations],
        },
    ).scalars()
    out = sorted(ids)
    return out or None


def _reserve_stock(
    conn: Connection, order_id: str, need: dict[Key, int], at: datetime, *, last: bool = False
) -> None:
    """Lock the stock rows in key order, check them together (so the error lists every
    shortage) and write them by guarded statements (``reserve_rows``); then the node
    capacity check (stock before node rows, the order every writer locks in). Called after
    every write that needs no stock lock, so the rows stay locked only for this and the
    commit: on PostgreSQL one function call, and with ``last`` (nothing written after) the
    commit goes in the same round trip."""
    try:
        short = reserve_rows(conn, need, at=at, ref=order_id, last=last)
    except StockRefused as full:  # PostgreSQL counted capacity in the function
        node_id, capacity = full.detail
        raise CapacityReached(node_id, int(capacity)) from None
    if short:
        raise InsufficientStock(
            [Shortage(n, s, need[(n, s)], available) for (n, s), available in short.items()]
        )
    if conn.dialect.name != "postgresql":
        check_capacity(conn, order_id, {n for n, _ in need}, at)


def place(
    conn: Connection,
    order_id: str,
    allocations: Sequence[AllocationRequest],
    *,
    request_hash: str,
    plan: dict[str, Any],
    at: datetime,
    hold: Hold | None = None,
    customer_id: str | None = None,
    destination_key: str | None = None,
    before_stock: Callable[[OrderView], None] | None = None,
) -> tuple[OrderView, bool]:
    """Create the order and reserve its allocations; ``(view, True)`` if it already existed.

    The order row is inserted first (ignored when the id exists): a new order, the common
    case, costs no read; an existing one is then read locked and replayed. A concurrent
    placement of the same id waits for the first to commit and then finds its row.

    The allocation rows, the order's events and ``before_stock`` (the caller's writes that
    need the order's view, such as its stored answer) are written before the stock rows are
    locked (``_reserve_stock``); a refusal rolls them back with the rest."""
    row = {
        "order_id": order_id,
        "status": "held" if hold else "placed",
        "request_hash": request_hash,
        "plan": plan,
        "rejections": 0,
        "created_at": at,
        "updated_at": at,
        "hold_reasons": list(hold.reasons) if hold else None,
        "hold_expires_at": hold.expires_at if hold else None,
        "customer_id": customer_id,
        "destination_key": destination_key,
    }
    ids: list[int] | None
    placed: dict[str, Any] | None = None  # the order.placed event, when written with the rows
    if conn.dialect.name == "postgresql":
        if not outbox.config_of(conn).endpoints:  # no deliveries to queue beside it
            placed = outbox.event_row(
                "order.placed",
                {"status": row["status"], "allocations": lines_json(allocations)},
                at=at,
                order_id=order_id,
                sequence=1,
            )
        ids = _insert_order_and_allocations_pg(conn, row, allocations, placed)
    elif conn.execute(_insert_order(conn), row).first() is None:
        ids = None
    else:
        ids = _insert_allocations(conn, order_id, allocations, at)
    if ids is None:
        existing = lock_order(conn, order_id)
        if existing is None or existing.request_hash != request_hash:
            raise OrderExists(order_id)
        return order_view(conn, order_id), True
    status: OrderStatus = "held" if hold else "placed"
    # Everything is what is being written (the allocation ids came back from the insert):
    # no read back.
    view = OrderView(
        order_id=order_id,
        status=status,
        request_hash=request_hash,
        plan=plan,
        rejections=0,
        created_at=at.astimezone(UTC),
        allocations=[
            AllocationView(
                allocation_id=i,
                line_id=a.line_id,
                node_id=a.node_id,
                sku=a.sku,
                qty=a.qty,
                status="reserved",
                reason=None,
                shipment_id=None,
            )
            for i, a in sorted(zip(ids, allocations, strict=True), key=lambda p: p[0])
        ],
        hold_reasons=list(hold.reasons) if hold else None,
        hold_expires_at=hold.expires_at.astimezone(UTC) if hold else None,
    )
    if placed is None:
        emit(  # a new order: its first events, no sequence to read
            conn,
            "order.placed",
            {"status": view.status, "allocations": lines_json(view.allocations)},
            at=at,
            order_id=order_id,
            after=0,
        )
    if hold:
        emit(
            conn,
            "order.held",
            {"reasons": list(hold.reasons), "expires_at": hold.expires_at.isoformat()},
            at=at,
            order_id=order_id,
            after=1,
        )
    if before_stock is not None:
        before_stock(view)
    _reserve_stock(conn, order_id, _needs(allocations), at, last=True)
    return view, False


def release_hold(conn: Connection, order_id: str, *, at: datetime) -> OrderView:
    """A held order goes to its nodes (idempotent once released)."""
    row = lock_order(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status != "held":
        if row.hold_reasons and row.status != "cancelled":
            return order_view(conn, order_id)  # already released
        raise OrderStateError(order_id, row.status, "release")
    _set_status(conn, order_id, "placed", at, hold_expires_at=None)
    emit(
        conn,
        "order.released",
        {"status": "placed", "hold_reasons": row.hold_reasons},
        at=at,
        order_id=order_id,
    )
    return order_view(conn, order_id)


def expire_holds(conn: Connection, *, at: datetime) -> list[str]:
    """Cancel every hold past its expiry (stock released, ``order.cancelled`` emitted)."""
    due = list(
        conn.execute(
            select(orders.c.order_id)
            .where(orders.c.status == "held", orders.c.hold_expires_at <= at)
            .order_by(orders.c.order_id)
        ).scalars()
    )
    for order_id in due:
        cancel(conn, order_id, at=at, reason="hold_expired")
    return due


def recent_orders(
    conn: Connection, *, customer_id: str | None, destination_key: str | None, since: datetime
) -> tuple[int, int]:
    """Orders placed since ``since`` to this destination, and by this customer."""
    counts = []
    for column, value in (
        (orders.c.destination_key, destination_key),
        (orders.c.customer_id, customer_id),
    ):
        if value is None:
            counts.append(0)
            continue
        counts.append(
            int(
                conn.execute(
                    select(func.count())
                    .select_from(orders)
                    .where(column == value, orders.c.created_at >= since)
                ).scalar_one()
            )
        )
    return counts[0], counts[1]


def reallocate(
    conn: Connection, order_id: str, allocations: Sequence[AllocationRequest], *, at: datetime
) -> OrderView:
    """Reserve replacement allocations for an open order (after a rejection), all or none."""
    row = lock_order(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status not in OPEN_STATUSES:
        raise OrderStateError(order_id, row.status, "reallocate")
    reserve_lines(conn, order_id, allocations, at=at)
    status = _status_after(conn, order_id, row.status)
    _set_status(conn, order_id, status, at)
    emit(
        conn,
        "order.rerouted",
        {"status": status, "allocations": lines_json(allocations)},
        at=at,
        order_id=order_id,
    )
    return order_view(conn, order_id)


def replan(
    conn: Connection,
    order_id: str,
    allocations: Sequence[AllocationRequest],
    *,
    at: datetime,
    why: str,
    plan: dict[str, Any] | None = None,
    expect_reserved: frozenset[int] | None = None,
) -> OrderView:
    """Swap every open reservation of the order for a new plan in one step, all or nothing.

    Used when the order must be routed again as a whole (its shipment caps span all lines, or
    its destination changed): release what is reserved, reserve the new allocations, and
    keep the new request/decision in ``plan`` when given. A shortfall rolls everything back.
    """
    row = lock_order(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status not in OPEN_STATUSES:
        raise OrderStateError(order_id, row.status, "re-route")
    reserved = _reserved_allocations(conn, order_id)
    if expect_reserved is not None and {r.allocation_id for r in reserved} != expect_reserved:
        raise OrderChanged(order_id)
    _release(conn, order_id, reserved, at, note=why)
    _finish_allocations(conn, reserved, "released", at, reason="replanned")
    reserve_lines(conn, order_id, allocations, at=at)
    status = _status_after(conn, order_id, row.status)
    if plan is None:
        _set_status(conn, order_id, status, at)
    else:
        _set_status(conn, order_id, status, at, plan=plan)
    emit(
        conn,
        "order.rerouted",
        {
            "status": status,
            "why": why,
            "released": lines_json(reserved),
            "allocations": lines_json(allocations),
        },
        at=at,
        order_id=order_id,
    )
    return order_view(conn, order_id)


def cancel_line(
    conn: Connection,
    order_id: str,
    line_id: str,
    qty: int | None,
    *,
    at: datetime,
    edit_plan: Callable[[dict[str, Any], str, int], dict[str, Any]],
) -> OrderView:
    """Cancel ``qty`` open units of one line (all open units when ``None``) before it ships.

    Units are released newest allocation first; a partly cancelled allocation keeps its
    remaining units reserved and the cancelled ones are logged as a released row. The stored
    request shrinks in the same transaction (``edit_plan``), so a later re-route cannot bring
    the cancelled units back.
    """
    row = lock_order(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status not in OPEN_STATUSES:
        raise OrderStateError(order_id, row.status, "cancel lines of")
    everything = [a for a in allocations_of(conn, order_id) if a.line_id == line_id]
    if not everything:
        raise AllocationNotFound(order_id, "*", [line_id])
    reserved = _reserved_allocations(conn, order_id, line_ids=[line_id])
    open_qty = sum(int(r.qty) for r in reserved)
    if open_qty == 0:
        raise LineAlreadyShipped(order_id, line_id, "no unit of it is still open")
    want = open_qty if qty is None else qty
    if want > open_qty:
        raise CancelQtyTooLarge(line_id, want, open_qty)
    left = want
    released: list[AllocationRequest] = []
    for r in reversed(reserved):
        if left == 0:
            break
        take = min(int(r.qty), left)
        left -= take
        released.append(AllocationRequest(r.line_id, r.node_id, r.sku, take))
        if take == int(r.qty):
            _finish_allocations(conn, [r], "released", at, reason="line_cancelled")
        else:
            conn.execute(
                update(order_allocations)
                .where(order_allocations.c.allocation_id == r.allocation_id)
                .values(qty=int(r.qty) - take, updated_at=at)
            )
            conn.execute(
                order_allocations.insert().values(
                    order_id=order_id,
                    line_id=r.line_id,
                    node_id=r.node_id,
                    sku=r.sku,
                    qty=take,
                    status="released",
                    reason="line_cancelled",
                    created_at=at,
                    updated_at=at,
                )
            )
    need: dict[Key, int] = defaultdict(int)
    for a in released:
        need[(a.node_id, a.sku)] += a.qty
    states = lock_rows(conn, need)
    for key, n in sorted(need.items()):
        move(
            conn,
            states[key],
            kind="release",
            at=at,
            d_reserved=-n,
            ref=order_id,
            note="line_cancel",
        )
    statuses = {a.status for a in allocations_of(conn, order_id)}
    status: OrderStatus = (
        _status_after(conn, order_id, row.status)
        if statuses & {"reserved", "shipped"}
        else "cancelled"
    )
    _set_status(conn, order_id, status, at, plan=edit_plan(row.plan, line_id, want))
    emit(
        conn,
        "order.line_cancelled",
        {
            "line_id": line_id,
            "qty": want,
            "open_qty": open_qty - want,
            "released": lines_json(released),
            "status": status,
        },
        at=at,
        order_id=order_id,
    )
    return order_view(conn, order_id)


def _reserved_allocations(
    conn: Connection,
    order_id: str,
    *,
    node_id: str | None = None,
    line_ids: Sequence[str] | None = None,
) -> list[Any]:
    params: dict[str, Any] = {"order_id": order_id}
    if node_id is not None:
        params["node_id"] = node_id
    if line_ids is not None:
        params["line_ids"] = list(line_ids)
    query = _reserved_query(node_id is not None, line_ids is not None)
    return list(conn.execute(query, params))


def _finish_allocations(
    conn: Connection,
    rows: Sequence[Any],
    status: str,
    at: datetime,
    reason: str | None = None,
    shipment_id: str | None = None,
) -> None:
    ids = [r.allocation_id for r in rows]
    if ids:
        conn.execute(
            _FINISH_ALLOCATIONS,
            {
                "ids": ids,
                "v_status": status,
                "v_reason": reason,
                "v_at": at,
                "v_shipment": shipment_id,
            },
        )


def _release(
    conn: Connection, order_id: str, rows: Sequence[Any], at: datetime, note: str | None = None
) -> dict[Key, StockState]:
    need: dict[Key, int] = defaultdict(int)
    for r in rows:
        need[(r.node_id, r.sku)] += int(r.qty)
    states = lock_rows(conn, need)
    for key, qty in sorted(need.items()):
        move(conn, states[key], kind="release", at=at, d_reserved=-qty, ref=order_id, note=note)
    return states


def _status_after(conn: Connection, order_id: str, current: OrderStatus) -> OrderStatus:
    if current in ("cancelled", "exception"):
        return current
    statuses = set(conn.execute(_ALLOCATION_STATUSES, {"order_id": order_id}).scalars())
    if "shipped" in statuses:
        return "partially_shipped" if "reserved" in statuses else "shipped"
    return "placed"


@cache
def _set_status_statement(key: Column[Any], more: tuple[str, ...]) -> Update:
    table = key.table
    values: dict[str, Any] = {
        "status": bindparam("v_status"),
        "updated_at": bindparam("v_at", type_=table.c.updated_at.type),
    }
    for name in more:
        values[name] = bindparam(f"v_{name}", type_=table.c[name].type)
    return update(table).where(key == bindparam("k_key")).values(**values)


def set_status(
    conn: Connection, key: Column[Any], value: str, status: str, at: datetime, **more: Any
) -> None:
    """The one write of a ledger row's status (an order's, a return's) and what changes with
    it (``more``), stamped ``updated_at``; the statement is built once per table and columns."""
    params = {"k_key": value, "v_status": status, "v_at": at}
    params.update({f"v_{name}": v for name, v in more.items()})
    conn.execute(_set_status_statement(key, tuple(sorted(more))), params)


def _set_status(
    conn: Connection, order_id: str, status: OrderStatus, at: datetime, **more: Any
) -> None:
    set_status(conn, orders.c.order_id, order_id, status, at, **more)


def cancel(
    conn: Connection,
    order_id: str,
    *,
    at: datetime,
    reason: str = "cancelled",
    last: bool = False,
) -> OrderView:
    """Release every reservation of the order; lines already shipped stay shipped.

    The stock rows are released after every other write and the view is read before, so the
    hot rows stay locked for the release and the commit alone (on PostgreSQL with ``last``,
    nothing written after, one round trip for both)."""
    row, before = lock_order_with_allocations(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status == "cancelled":
        return _view_of(conn, row, row.status, before)
    if row.status == "shipped":
        raise OrderStateError(order_id, row.status, "cancel")
    reserved = [a for a in before if a.status == "reserved"]
    allocations = [
        replace(a, status="released", reason=reason, shipment_id=None)
        if a.status == "reserved"
        else a
        for a in before
    ]
    shipped_any = any(a.status == "shipped" for a in allocations)
    status: OrderStatus = "shipped" if shipped_any else "cancelled"
    data = {"status": status, "reason": reason, "released": lines_json(reserved)}
    if conn.dialect.name == "postgresql":
        _cancel_writes_pg(conn, order_id, reserved, status, data, int(row.last_sequence), at)
    else:
        _finish_allocations(conn, reserved, "released", at, reason=reason)
        _set_status(conn, order_id, status, at)
        emit(conn, "order.cancelled", data, at=at, order_id=order_id)
    view = _view_of(conn, row, status, allocations)
    release_rows(conn, _needs(reserved), at=at, ref=order_id, note="cancel", last=last)
    return view


def _cancel_writes_pg(
    conn: Connection,
    order_id: str,
    reserved: Sequence[AllocationView],
    status: OrderStatus,
    data: dict[str, Any],
    last_sequence: int,
    at: datetime,
) -> None:
    """A cancel's writes before its release in one statement; with webhook endpoints the
    event goes through ``emit`` (it queues their deliveries), the sequence still known."""
    event = None
    if not outbox.config_of(conn).endpoints:
        event = outbox.event_row(
            "order.cancelled", data, at=at, order_id=order_id, sequence=last_sequence + 1
        )
    conn.execute(
        _CANCEL_PG,
        {
            "ids": [a.allocation_id for a in reserved],
            "reason": data["reason"],
            "at": at,
            "status": status,
            "order_id": order_id,
            "with_event": event is not None,
            "event_id": event["event_id"] if event else None,
            "event_type": event["type"] if event else None,
            "sequence": event["sequence"] if event else None,
            "event_payload": event["payload"] if event else None,
        },
    )
    if event is None:
        emit(conn, "order.cancelled", data, at=at, order_id=order_id, after=last_sequence)


def ship(
    conn: Connection,
    order_id: str,
    line_ids: Sequence[str] | None,
    *,
    at: datetime,
    carrier: str | None = None,
    tracking_number: str | None = None,
    shipped_at: datetime | None = None,
) -> OrderView:
    """Turn reservations into deductions (on_hand and reserved drop, shipped grows) and record
    one shipment per node with its carrier and tracking number."""
    row = lock_order(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status in ("cancelled", "held"):
        raise OrderStateError(order_id, row.status, "ship")
    reserved = _reserved_allocations(conn, order_id, line_ids=line_ids)
    if not reserved:
        if line_ids is not None:
            raise AllocationNotFound(order_id, "*", line_ids)
        return order_view(conn, order_id)
    by_node: dict[str, list[Any]] = defaultdict(list)
    for r in reserved:
        by_node[r.node_id].append(r)
    if tracking_number is not None and len(by_node) > 1:
        raise InvalidLedgerRequest(
            f"tracking_number: lines {sorted(r.line_id for r in reserved)} ship from "
            f"{len(by_node)} nodes {sorted(by_node)}, and one tracking number names one parcel; "
            "ship each node's line_ids in its own request",
            field="tracking_number",
        )
    need: dict[Key, int] = defaultdict(int)
    for r in reserved:
        need[(r.node_id, r.sku)] += int(r.qty)
    states = lock_rows(conn, need)
    for key, qty in sorted(need.items()):
        move(
            conn,
            states[key],
            kind="ship",
            at=at,
            d_on_hand=-qty,
            d_reserved=-qty,
            d_shipped=qty,
            ref=order_id,
        )
    existing = len(shipments_of(conn, order_id))
    made: list[tuple[str, str, list[Any]]] = []
    for i, (node_id, rows) in enumerate(sorted(by_node.items()), start=existing + 1):
        shipment_id = f"{order_id}-S{i}"
        conn.execute(
            _INSERT_SHIPMENT,
            {
                "shipment_id": shipment_id,
                "order_id": order_id,
                "node_id": node_id,
                "carrier": carrier,
                "tracking_number": tracking_number,
                "shipped_at": shipped_at or at,
                "created_at": at,
                "updated_at": at,
            },
        )
        _finish_allocations(conn, rows, "shipped", at, shipment_id=shipment_id)
        made.append((shipment_id, node_id, rows))
    status = _status_after(conn, order_id, row.status)
    _set_status(conn, order_id, status, at)
    for shipment_id, node_id, rows in made:
        emit(
            conn,
            "shipment.created",
            {
                "status": status,
                "shipment_id": shipment_id,
                "node_id": node_id,
                "carrier": carrier,
                "tracking_number": tracking_number,
                "shipped_at": (shipped_at or at).isoformat(),
                "lines": lines_json(rows),
            },
            at=at,
            order_id=order_id,
        )
    return order_view(conn, order_id)


def start_of_local_day(at: datetime, timezone: str) -> datetime:
    """The node's last local midnight: daily capacity counts from here."""
    return at.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)


def orders_taken(
    conn: Connection, node_id: str, since: datetime, *, excluding: str | None = None
) -> int:
    """Distinct orders holding reserved or shipped allocations at the node since ``since``."""
    params: dict[str, Any] = {"node_id": node_id, "since": since}
    if excluding is not None:
        params["excluding"] = excluding
    return int(conn.execute(_orders_taken_query(excluding is not None), params).scalar_one())


def capacity_limited(conn: Connection, node_ids: Iterable[str] | None, *, lock: bool) -> list[Any]:
    params = {} if node_ids is None else {"node_ids": sorted(node_ids)}
    return list(conn.execute(_capacity_limited_query(node_ids is not None, lock), params))


def check_capacity(conn: Connection, order_id: str, node_ids: set[str], at: datetime) -> None:
    """Refuse the reservation if a node already took its daily capacity of orders today.

    Counted inside the reservation's transaction with the node rows locked (PostgreSQL; on
    SQLite ``BEGIN IMMEDIATE`` already serialises writers), so concurrent orders cannot all
    see the same count; the day is the node's local day.
    """
    for row in capacity_limited(conn, node_ids, lock=True):
        since = start_of_local_day(at, row.timezone)
        if orders_taken(conn, row.node_id, since, excluding=order_id) >= row.daily_capacity:
            raise CapacityReached(row.node_id, int(row.daily_capacity))


def end_of_local_day(at: datetime, timezone: str) -> datetime:
    """Next local midnight at the node, as an aware UTC-comparable datetime."""
    tz = ZoneInfo(timezone)
    local = at.astimezone(tz)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.replace(tzinfo=tz)


def reject(
    conn: Connection,
    order_id: str,
    node_id: str,
    line_ids: Sequence[str],
    reason: RejectReason,
    *,
    at: datetime,
    max_rejections: int,
) -> RejectResult:
    """Release the rejected allocations, apply what the node told us (the rules of
    ``routing.rejections``) in the same transaction, and say what to reroute.
    """
    row = lock_order(conn, order_id)
    if row is None:
        raise OrderNotFound(order_id)
    if row.status not in (*OPEN_STATUSES, "exception"):
        raise OrderStateError(order_id, row.status, "reject lines of")
    rejected = _reserved_allocations(conn, order_id, node_id=node_id, line_ids=line_ids)
    if not rejected:
        raise AllocationNotFound(order_id, node_id, line_ids)
    states = _release(conn, order_id, rejected, at, note=f"rejected:{reason}")
    _finish_allocations(conn, rejected, "rejected", at, reason=reason)

    by_sku: dict[Key, int] = defaultdict(int)
    for r in rejected:
        by_sku[(r.node_id, r.sku)] += int(r.qty)
    closed_until = None
    for key, qty in sorted(by_sku.items()):
        state = states[key]
        drop = stock_to_drop(reason, available=state.on_hand - state.reserved, rejected_qty=qty)
        if drop:
            move(
                conn,
                state,
                kind="reject_adjust",
                at=at,
                d_on_hand=-drop,
                ref=order_id,
                note=reason,
            )
    if closes_node(reason):
        tz = conn.execute(select(nodes.c.timezone).where(nodes.c.node_id == node_id)).scalar_one()
        closed_until = end_of_local_day(at, tz)
        conn.execute(
            update(nodes)
            .where(nodes.c.node_id == node_id)
            .values(closed_until=closed_until, updated_at=at)
        )

    rejections = int(row.rejections) + 1
    status: OrderStatus = (
        "exception"
        if becomes_exception(rejections, max_rejections)
        else _status_after(conn, order_id, cast(OrderStatus, row.status))
    )
    _set_status(conn, order_id, status, at, rejections=rejections)
    emit(
        conn,
        "allocation.rejected",
        {
            "node_id": node_id,
            "reason": reason,
            "lines": lines_json(rejected),
            "rejections": rejections,
            "status": status,
            "node_closed_until": closed_until.isoformat() if closed_until else None,
        },
        at=at,
        order_id=order_id,
    )
    return RejectResult(
        order_id=order_id,
        node_id=node_id,
        reason=reason,
        reroute=[RerouteLine(r.line_id, r.sku, int(r.qty), node_id) for r in rejected],
        order_status=status,
        rejections=rejections,
        node_closed_until=closed_until,
    )
