"""Read-only queries for operations reports (order search, per-node activity, KPI facts).

Each function takes an open read connection; ``Ledger`` owns the transaction. The console
and the API call the same ``Ledger`` methods, so a filter or a count is defined once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from serving.ledger.stock_ops import chunks
from serving.ledger.tables import order_allocations, orders, shipments, stock


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """Order search: every given field must match (exact, except ``order_id`` as a prefix)."""

    order_id: str | None = None
    status: str | None = None
    channel: str | None = None
    node_id: str | None = None
    placed_from: datetime | None = None
    placed_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: str
    status: str
    channel: str | None
    created_at: datetime
    rejections: int
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeActivity:
    """One node's stock and allocation counts since a point in time."""

    node_id: str
    skus: int = 0
    on_hand: int = 0
    reserved: int = 0
    available: int = 0
    allocations: int = 0
    rejected: int = 0
    shipments: int = 0


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What the KPIs of one order are computed from: parts of its stored plan (read in SQL,
    not the whole plan with its rankings), its allocations and its parcels."""

    order_id: str
    status: str
    created_at: datetime
    rejections: int
    channel: str | None
    total_cost: float | None
    planned_shipments: int | None
    degraded: bool | None
    promise: dict[str, Any] | None
    timings_ms: dict[str, float] | None
    planned: list[dict[str, Any]] = field(default_factory=list)  # the decision's allocations
    allocations: list[tuple[str, str, int]] = field(default_factory=list)  # node, status, qty
    shipments: list[tuple[str, datetime, datetime | None]] = field(default_factory=list)


def _channel() -> Any:
    return orders.c.plan[("request", "channel")].as_string()


def search_orders(conn: Connection, f: OrderFilter, limit: int) -> list[OrderRow]:
    """Newest first; at most ``limit`` orders."""
    q = select(
        orders.c.order_id,
        orders.c.status,
        orders.c.created_at,
        orders.c.rejections,
        _channel().label("channel"),
    )
    if f.order_id:
        q = q.where(orders.c.order_id.startswith(f.order_id, autoescape=True))
    if f.status:
        q = q.where(orders.c.status == f.status)
    if f.channel:
        q = q.where(_channel() == f.channel)
    if f.placed_from is not None:
        q = q.where(orders.c.created_at >= f.placed_from)
    if f.placed_to is not None:
        q = q.where(orders.c.created_at < f.placed_to)
    if f.node_id:
        q = q.where(
            orders.c.order_id.in_(
                select(order_allocations.c.order_id).where(order_allocations.c.node_id == f.node_id)
            )
        )
    rows = list(
        conn.execute(q.order_by(orders.c.created_at.desc(), orders.c.order_id).limit(limit))
    )
    by_order: dict[str, list[str]] = defaultdict(list)
    if rows:
        ids = [r.order_id for r in rows]
        for oid, nid in conn.execute(
            select(order_allocations.c.order_id, order_allocations.c.node_id)
            .where(order_allocations.c.order_id.in_(ids))
            .distinct()
            .order_by(order_allocations.c.order_id, order_allocations.c.node_id)
        ):
            by_order[oid].append(nid)
    return [
        OrderRow(
            r.order_id,
            r.status,
            r.channel,
            r.created_at,
            int(r.rejections),
            tuple(by_order[r.order_id]),
        )
        for r in rows
    ]


def node_activity(conn: Connection, since: datetime) -> dict[str, NodeActivity]:
    """Stock totals per node now; allocations, rejections and parcels since ``since``."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for r in conn.execute(
        select(
            stock.c.node_id,
            func.count(),
            func.sum(stock.c.on_hand),
            func.sum(stock.c.reserved),
            func.sum(stock.c.available),
        ).group_by(stock.c.node_id)
    ):
        out[r[0]].update(skus=int(r[1]), on_hand=int(r[2] or 0), reserved=int(r[3] or 0))
        out[r[0]]["available"] = int(r[4] or 0)
    oa = order_allocations
    for r in conn.execute(
        select(
            oa.c.node_id,
            func.count(),
            func.sum(case((oa.c.status == "rejected", 1), else_=0)),
        )
        .where(oa.c.created_at >= since)
        .group_by(oa.c.node_id)
    ):
        out[r[0]].update(allocations=int(r[1]), rejected=int(r[2] or 0))
    for r in conn.execute(
        select(shipments.c.node_id, func.count())
        .where(shipments.c.shipped_at >= since)
        .group_by(shipments.c.node_id)
    ):
        out[r[0]]["shipments"] = int(r[1])
    return {node_id: NodeActivity(node_id, **counts) for node_id, counts in out.items()}


def _decision(*path: str) -> Any:
    return orders.c.plan[("decision", *path)]


def order_facts(
    conn: Connection, since: datetime, limit: int, *, shipped_only: bool = False
) -> list[OrderFacts]:
    """The newest ``limit`` orders placed since ``since`` (only those with parcels when
    ``shipped_only``) with their allocations and parcels, oldest first."""
    q = (
        select(
            orders.c.order_id,
            orders.c.status,
            orders.c.created_at,
            orders.c.rejections,
            _channel().label("channel"),
            _decision("total_cost").as_float().label("total_cost"),
            _decision("shipments").as_integer().label("planned_shipments"),
            _decision("degraded").as_boolean().label("degraded"),
            _decision("promise").label("promise"),
            _decision("timings_ms").label("timings_ms"),
            _decision("allocations").label("planned"),
        )
        .where(orders.c.created_at >= since)
        .order_by(orders.c.created_at.desc())
        .limit(limit)
    )
    if shipped_only:
        q = q.where(orders.c.order_id.in_(select(shipments.c.order_id)))
    rows = list(conn.execute(q))
    ids = [r.order_id for r in rows]
    allocs: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    parcels: dict[str, list[tuple[str, datetime, datetime | None]]] = defaultdict(list)
    for part in chunks(ids):
        for a in conn.execute(
            select(
                order_allocations.c.order_id,
                order_allocations.c.node_id,
                order_allocations.c.status,
                order_allocations.c.qty,
            ).where(order_allocations.c.order_id.in_(part))
        ):
            allocs[a.order_id].append((a.node_id, a.status, int(a.qty)))
        for s in conn.execute(
            select(
                shipments.c.order_id,
                shipments.c.node_id,
                shipments.c.shipped_at,
                shipments.c.delivered_at,
            ).where(shipments.c.order_id.in_(part))
        ):
            parcels[s.order_id].append((s.node_id, s.shipped_at, s.delivered_at))
    return [
        OrderFacts(
            order_id=r.order_id,
            status=r.status,
            created_at=r.created_at,
            rejections=int(r.rejections),
            channel=r.channel,
            total_cost=r.total_cost,
            planned_shipments=r.planned_shipments,
            degraded=r.degraded,
            promise=r.promise if isinstance(r.promise, dict) else None,
            timings_ms=r.timings_ms if isinstance(r.timings_ms, dict) else None,
            planned=r.planned if isinstance(r.planned, list) else [],
            allocations=allocs[r.order_id],
            shipments=parcels[r.order_id],
        )
        for r in reversed(rows)
    ]
