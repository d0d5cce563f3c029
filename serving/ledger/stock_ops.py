"""The one primitive that changes stock: a guarded UPDATE of the row plus its movement record.

Every path (reserve, release, ship, reject, adjust, load) goes through ``move`` so the
movement log always replays to the stock row, which is what drift checks rely on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from serving.ledger import outbox
from serving.ledger.tables import movements, nodes, stock

Key = tuple[str, str]

#: Row-value IN lists are chunked to stay under SQLite's bound-parameter limit.
CHUNK = 400


@dataclass(slots=True)
class StockState:
    """A locked stock row as read inside the current transaction; ``move`` keeps it current."""

    node_id: str
    sku: str
    on_hand: int
    reserved: int
    shipped: int
    shortfall: int
    last_count_at: datetime | None
    last_event_at: datetime | None

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def insert_ignore(conn: Connection, table: Any) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def ensure_rows(conn: Connection, keys: Iterable[Key], at: datetime) -> None:
    """Create zero rows for node×SKUs first seen, so they can be locked like any other."""
    values = [
        {
            "node_id": n,
            "sku": s,
            "on_hand": 0,
            "reserved": 0,
            "shipped": 0,
            "shortfall": 0,
            "updated_at": at,
        }
        for n, s in sorted(set(keys))
    ]
    for part in chunks(values):
        conn.execute(insert_ignore(conn, stock), list(part))


def lock_rows(conn: Connection, keys: Iterable[Key]) -> dict[Key, StockState]:
    """Read and lock stock rows in (node_id, sku) order.

    The fixed order means two transactions touching overlapping rows queue instead of
    deadlocking. PostgreSQL takes row locks (``FOR UPDATE``); on SQLite the clause compiles
    away and ``BEGIN IMMEDIATE`` already holds the database write lock.
    """
    ordered = sorted(set(keys))
    found: dict[Key, StockState] = {}
    for part in chunks(ordered):
        query = (
            select(
                stock.c.node_id,
                stock.c.sku,
                stock.c.on_hand,
                stock.c.reserved,
                stock.c.shipped,
                stock.c.shortfall,
                stock.c.last_count_at,
                stock.c.last_event_at,
            )
            .where(tuple_(stock.c.node_id, stock.c.sku).in_(list(part)))
            .order_by(stock.c.node_id, stock.c.sku)
            .with_for_update()
        )
        for row in conn.execute(query):
            found[(row.node_id, row.sku)] = StockState(
                row.node_id,
                row.sku,
                int(row.on_hand),
                int(row.reserved),
                int(row.shipped),
                int(row.shortfall),
                row.last_count_at,
                row.last_event_at,
            )
    return found


def move(
    conn: Connection,
    state: StockState,
    *,
    kind: str,
    at: datetime,
    event_time: datetime | None = None,
    d_on_hand: int = 0,
    d_reserved: int = 0,
    d_shipped: int = 0,
    ref: str | None = None,
    note: str | None = None,
    require_available: int | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Apply deltas to one stock row and log them; ``False`` if the guard refused.

    ``require_available`` adds ``AND on_hand - reserved >= :q`` to the UPDATE: the check and
    the write are one statement, so no other transaction can slip in between.
    """
    stmt = update(stock).where(stock.c.node_id == state.node_id, stock.c.sku == state.sku)
    if require_available is not None:
        stmt = stmt.where(stock.c.on_hand - stock.c.reserved >= require_available)
    values: dict[str, Any] = {
        "on_hand": stock.c.on_hand + d_on_hand,
        "reserved": stock.c.reserved + d_reserved,
        "shipped": stock.c.shipped + d_shipped,
        "updated_at": at,
    }
    values.update(extra or {})
    if conn.execute(stmt.values(**values)).rowcount != 1:
        return False
    before = state.available
    state.on_hand += d_on_hand
    state.reserved += d_reserved
    state.shipped += d_shipped
    if d_on_hand or d_reserved or d_shipped:
        conn.execute(
            movements.insert().values(
                at=at,
                event_time=event_time or at,
                node_id=state.node_id,
                sku=state.sku,
                kind=kind,
                d_on_hand=d_on_hand,
                d_reserved=d_reserved,
                d_shipped=d_shipped,
                ref=ref,
                note=note,
            )
        )
    _low_stock(conn, state, before, at)
    return True


def _low_stock(conn: Connection, state: StockState, before: int, at: datetime) -> None:
    """Emit ``inventory.low`` when available stock falls below the threshold (once per crossing)."""
    threshold = outbox.config_of(conn).low_stock_threshold
    if threshold > 0 and before >= threshold > state.available:
        outbox.emit(
            conn,
            "inventory.low",
            {
                "node_id": state.node_id,
                "sku": state.sku,
                "available": state.available,
                "on_hand": state.on_hand,
                "reserved": state.reserved,
                "threshold": threshold,
            },
            at=at,
            subject=f"stock:{state.node_id}/{state.sku}",
        )


def on_hand_moved_after(conn: Connection, key: Key, after: datetime) -> int:
    """Net on-hand change the log recorded for a node×SKU after ``after`` (to rebase a late count)."""
    total = conn.execute(
        select(func.coalesce(func.sum(movements.c.d_on_hand), 0)).where(
            movements.c.node_id == key[0],
            movements.c.sku == key[1],
            movements.c.event_time > after,
        )
    ).scalar_one()
    return int(total)


def known_nodes(conn: Connection, node_ids: Iterable[str]) -> set[str]:
    ids = sorted(set(node_ids))
    found: set[str] = set()
    for part in chunks(ids):
        found.update(
            conn.execute(select(nodes.c.node_id).where(nodes.c.node_id.in_(list(part)))).scalars()
        )
    return found
