"""Reads that feed live features: which node×SKU rows moved since a point in the movement log,
and their current position (with the time of their last count)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection

from serving.ledger.records import StockPosition
from serving.ledger.stock_ops import chunks
from serving.ledger.tables import movements, order_allocations, stock

#: note of the release movement a node's rejection writes (``orders.reject``)
REJECTED_NOTE = "rejected:"


@dataclass(frozen=True, slots=True)
class Moved:
    """What the movement log says since a point: the pairs touched (first-seen order), how
    many rejections each had, and the id the read ended at."""

    keys: list[tuple[str, str]]
    rejections: dict[tuple[str, str], int]
    last_id: int


def touched_since(conn: Connection, after_id: int, limit: int) -> Moved:
    """Pairs moved after movement ``after_id`` (at most ``limit`` movements read); the end
    is ``after_id`` again when nothing moved."""
    rows = conn.execute(
        select(
            movements.c.movement_id,
            movements.c.node_id,
            movements.c.sku,
            movements.c.kind,
            movements.c.note,
        )
        .where(movements.c.movement_id > after_id)
        .order_by(movements.c.movement_id)
        .limit(limit)
    ).all()
    if not rows:
        return Moved([], {}, after_id)
    keys = list(dict.fromkeys((r.node_id, r.sku) for r in rows))
    rejections: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.kind == "release" and (r.note or "").startswith(REJECTED_NOTE):
            rejections[(r.node_id, r.sku)] = rejections.get((r.node_id, r.sku), 0) + 1
    return Moved(keys, rejections, int(rows[-1].movement_id))


def last_movement_id(conn: Connection) -> int:
    return int(
        conn.execute(select(func.coalesce(func.max(movements.c.movement_id), 0))).scalar_one()
    )


def last_allocation_at(conn: Connection) -> datetime | None:
    at: datetime | None = conn.execute(
        select(func.max(order_allocations.c.created_at))
    ).scalar_one_or_none()
    return at


def positions(conn: Connection, keys: Sequence[tuple[str, str]] | None) -> list[StockPosition]:
    """Stock of the given node×SKU pairs (every row when ``keys`` is None)."""
    cols = (
        stock.c.node_id,
        stock.c.sku,
        stock.c.on_hand,
        stock.c.reserved,
        stock.c.available,
        stock.c.last_count_at,
    )
    parts: list[Sequence[tuple[str, str]] | None] = (
        [None] if keys is None else list(chunks(sorted(set(keys))))
    )
    out: list[StockPosition] = []
    for part in parts:
        q = select(*cols).order_by(stock.c.node_id, stock.c.sku)
        if part is not None:
            q = q.where(tuple_(stock.c.node_id, stock.c.sku).in_(list(part)))
        out.extend(
            StockPosition(
                r.node_id, r.sku, int(r.on_hand), int(r.reserved), int(r.available), r.last_count_at
            )
            for r in conn.execute(q)
        )
    return out
