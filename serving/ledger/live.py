"""Reads that follow the ledger's live state for the request path and the live features:
which node×SKU rows moved since a point in the movement log, their current position (with
the time of their last count), and the orders each node took in its local day."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select, tuple_
from sqlalchemy.engine import Connection

from serving.ledger.orders import CAPACITY_STATUSES, start_of_local_day
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


#: a movement as followers read it: (movement_id, node_id, sku, kind, note)
LogRow = tuple[int, str, str, str, str | None]


def moved(rows: Sequence[LogRow], last_id: int) -> Moved:
    """The pairs ``rows`` touched (first-seen order) and their rejections."""
    keys = list(dict.fromkeys((r[1], r[2]) for r in rows))
    rejections: dict[tuple[str, str], int] = {}
    for _, node_id, sku, kind, note in rows:
        if kind == "release" and (note or "").startswith(REJECTED_NOTE):
            rejections[(node_id, sku)] = rejections.get((node_id, sku), 0) + 1
    return Moved(keys, rejections, last_id)


class MovementCursor:
    """A follower's place in the movement log that loses no movement, in whatever order the
    writers commit.

    SQLite has one writer, so movement ids commit in id order. PostgreSQL takes the id from a
    sequence at INSERT and transactions commit in any order, so ``id > last seen`` would skip
    for ever a movement whose transaction took a lower id and committed later. The cursor
    remembers every id it stepped over (a gap) and asks for it again on each read until it
    appears, or until it is ``gap_seconds`` old (a rolled-back transaction leaves its ids
    unused for ever; followers bound their staleness by that age)."""

    __slots__ = ("clock", "gap_seconds", "gaps", "high", "max_gaps")

    def __init__(
        self,
        high: int = 0,
        *,
        gaps: Iterable[int] = (),
        gap_seconds: float = 10.0,
        max_gaps: int = 2000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.high = high
        self.gap_seconds = gap_seconds
        self.max_gaps = max_gaps
        self.clock = clock
        now = clock()
        self.gaps: dict[int, float] = dict.fromkeys(gaps, now)

    def advance(self, late: Sequence[LogRow], new: Sequence[LogRow]) -> None:
        """Take one read: ``late`` are rows found among the gaps, ``new`` the rows past
        ``high`` in id order (every id between them that is missing becomes a gap)."""
        now = self.clock()
        gaps = self.gaps
        for r in late:
            gaps.pop(r[0], None)
        prev = self.high
        for r in new:
            mid = r[0]
            for missing in range(prev + 1, min(mid, prev + 1 + self.max_gaps)):
                gaps[missing] = now
            prev = mid
        self.high = prev
        if gaps:
            oldest = now - self.gap_seconds
            for mid in [m for m, seen in gaps.items() if seen < oldest]:
                del gaps[mid]
            if len(gaps) > self.max_gaps:
                for mid in sorted(gaps)[: len(gaps) - self.max_gaps]:
                    del gaps[mid]


@cache
def _follow_sql(dialect: str, n_gaps: int) -> str:
    """The movements past the high-water mark (``n_gaps == 0``), or the ``n_gaps`` ids
    stepped over, in the driver's parameter style."""
    mark = "%s" if dialect == "postgresql" else "?"
    head = "SELECT movement_id, node_id, sku, kind, note FROM movements WHERE movement_id "
    if n_gaps:
        return head + "IN (" + ", ".join([mark] * n_gaps) + ")"
    return head + f"> {mark} ORDER BY movement_id LIMIT {mark}"


def follow(cur: Any, dialect: str, cursor: MovementCursor, limit: int) -> list[LogRow]:
    """Movements committed since ``cursor`` last read (late ones below its high-water mark
    included), at most ``limit`` past it, read through the driver's cursor ``cur``; advances
    it."""
    late: list[LogRow] = []
    pending = sorted(cursor.gaps)
    for part in chunks(pending):
        cur.execute(_follow_sql(dialect, len(part)), list(part))
        late.extend(cur.fetchall())
    cur.execute(_follow_sql(dialect, 0), [cursor.high, limit])
    new: list[LogRow] = cur.fetchall()
    cursor.advance(late, new)
    return late + new


def cursor_at_end(conn: Connection, window: int, **options: Any) -> MovementCursor:
    """A cursor at the end of the log whose gaps are the ids missing among its last
    ``window`` (transactions that may still commit: on PostgreSQL, ones in flight now)."""
    high = last_movement_id(conn)
    seen = set(
        conn.execute(
            select(movements.c.movement_id).where(movements.c.movement_id > high - window)
        ).scalars()
    )
    missing = (m for m in range(max(high - window, 0) + 1, high) if m not in seen)
    return MovementCursor(high, gaps=missing, **options)


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


@cache
def _orders_taken_by_node() -> Select[Any]:
    oa = order_allocations
    return (
        select(oa.c.node_id, func.count(func.distinct(oa.c.order_id)))
        .where(
            oa.c.node_id.in_(bindparam("node_ids", expanding=True)),
            oa.c.created_at >= bindparam("since", type_=oa.c.created_at.type),
            oa.c.status.in_(CAPACITY_STATUSES),
        )
        .group_by(oa.c.node_id)
    )


def orders_taken_today(conn: Connection, nodes_: Sequence[Any], at: datetime) -> dict[str, int]:
    """Distinct orders each of ``nodes_`` (rows with ``node_id`` and ``timezone``) took since
    its last local midnight: one grouped read per local midnight (per time zone), not one
    per node (a world of hundreds of capacity-limited nodes paid one round trip each)."""
    counts = dict.fromkeys((n.node_id for n in nodes_), 0)
    by_day: dict[datetime, list[str]] = {}
    for n in nodes_:
        by_day.setdefault(start_of_local_day(at, n.timezone), []).append(n.node_id)
    query = _orders_taken_by_node()
    for since, ids in by_day.items():
        for part in chunks(ids):
            for node_id, taken in conn.execute(query, {"node_ids": list(part), "since": since}):
                counts[node_id] = int(taken)
    return counts
