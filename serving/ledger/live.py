"""Reads that feed live features: which node×SKU rows moved since a point in the movement log,
and their current position (with the time of their last count)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection

from serving.ledger.records import StockPosition
from serving.ledger.stock_ops import chunks
from serving.ledger.tables import movements, stock


def touched_since(conn: Connection, after_id: int, limit: int) -> tuple[list[tuple[str, str]], int]:
    """Distinct (node, sku) moved after movement ``after_id`` (at most ``limit`` movements read)
    and the last movement id read; ``after_id`` again when nothing moved."""
    rows = conn.execute(
        select(movements.c.movement_id, movements.c.node_id, movements.c.sku)
        .where(movements.c.movement_id > after_id)
        .order_by(movements.c.movement_id)
        .limit(limit)
    ).all()
    if not rows:
        return [], after_id
    keys = list(dict.fromkeys((r.node_id, r.sku) for r in rows))
    return keys, int(rows[-1].movement_id)


def last_movement_id(conn: Connection) -> int:
    return int(
        conn.execute(select(func.coalesce(func.max(movements.c.movement_id), 0))).scalar_one()
    )


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
