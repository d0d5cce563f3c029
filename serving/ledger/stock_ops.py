"""The one primitive that changes stock: a guarded UPDATE of the row plus its movement record.

Every path (reserve, release, ship, reject, adjust, load) goes through ``move`` so the
movement log always replays to the stock row, which is what drift checks rely on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, Update

from serving.ledger import outbox
from serving.ledger.db import driver_failure
from serving.ledger.errors import LedgerError
from serving.ledger.tables import movements, nodes, stock

Key = tuple[str, str]

#: Row-value IN lists are chunked to stay under SQLite's bound-parameter limit.
CHUNK = 400

# Statements of the hot paths are built once and executed with bound parameters: building a
# SQLAlchemy expression per call (and its cache key) costs more than running it on SQLite.
#: A stock row as ``StockState`` holds it.
_STATE_COLUMNS = (
    stock.c.node_id,
    stock.c.sku,
    stock.c.on_hand,
    stock.c.reserved,
    stock.c.shipped,
    stock.c.shortfall,
    stock.c.last_count_at,
    stock.c.last_event_at,
)
_STOCK_STATE = select(*_STATE_COLUMNS).order_by(stock.c.node_id, stock.c.sku)
_LOCK_ROWS = _STOCK_STATE.where(
    tuple_(stock.c.node_id, stock.c.sku).in_(bindparam("keys", expanding=True))
).with_for_update()
# SQLite plans a row-value IN list as a scan of the whole stock table; two plain IN lists
# search the primary key. They may match a few rows more (same node, other SKU of the
# request), which are dropped below; SQLite has no row locks to over-take (``BEGIN
# IMMEDIATE`` holds the database's write lock for the whole transaction).
_LOCK_ROWS_SQLITE = _STOCK_STATE.where(
    stock.c.node_id.in_(bindparam("node_ids", expanding=True)),
    stock.c.sku.in_(bindparam("skus", expanding=True)),
)
_INSERT_MOVEMENT = movements.insert()


@cache
def _move_statement(guarded: bool, extra: tuple[str, ...]) -> Update:
    """``UPDATE stock SET on_hand = on_hand + :d, ...`` for one row, optionally guarded by
    available stock, setting the ``extra`` columns to bound values."""
    stmt = update(stock).where(
        stock.c.node_id == bindparam("k_node"), stock.c.sku == bindparam("k_sku")
    )
    if guarded:
        stmt = stmt.where(stock.c.on_hand - stock.c.reserved >= bindparam("k_need"))
    values: dict[str, Any] = {
        "on_hand": stock.c.on_hand + bindparam("d_on_hand", type_=stock.c.on_hand.type),
        "reserved": stock.c.reserved + bindparam("d_reserved", type_=stock.c.reserved.type),
        "shipped": stock.c.shipped + bindparam("d_shipped", type_=stock.c.shipped.type),
        "updated_at": bindparam("v_updated_at", type_=stock.c.updated_at.type),
    }
    for name in extra:
        values[name] = bindparam(f"v_{name}", type_=stock.c[name].type)
    return stmt.values(**values)


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
    """``INSERT ... ON CONFLICT DO NOTHING`` for the connection's dialect (built once per
    dialect and table; statements are immutable, so callers extend copies)."""
    return _insert_ignore(conn.dialect.name, table)


@cache
def _insert_ignore(dialect: str, table: Any) -> Insert:
    if dialect == "postgresql":
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
    deadlocking. PostgreSQL takes row locks (``FOR UPDATE``); on SQLite ``BEGIN IMMEDIATE``
    already holds the database write lock.
    """
    ordered = sorted(set(keys))
    found: dict[Key, StockState] = {}
    sqlite_ = conn.dialect.name == "sqlite"
    for part in chunks(ordered):
        wanted = set(part)
        if sqlite_:
            rows = conn.execute(
                _LOCK_ROWS_SQLITE,
                {"node_ids": sorted({n for n, _ in part}), "skus": sorted({s for _, s in part})},
            )
        else:
            rows = conn.execute(_LOCK_ROWS, {"keys": list(part)})
        for row in rows:
            if sqlite_ and (row.node_id, row.sku) not in wanted:
                continue
            found[(row.node_id, row.sku)] = _state(row)
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
    names = tuple(sorted(extra)) if extra else ()
    params: dict[str, Any] = {
        "k_node": state.node_id,
        "k_sku": state.sku,
        "d_on_hand": d_on_hand,
        "d_reserved": d_reserved,
        "d_shipped": d_shipped,
        "v_updated_at": at,
    }
    if require_available is not None:
        params["k_need"] = require_available
    if extra:
        params.update({f"v_{name}": value for name, value in extra.items()})
    stmt = _move_statement(require_available is not None, names)
    if conn.execute(stmt, params).rowcount != 1:
        return False
    before = state.available
    state.on_hand += d_on_hand
    state.reserved += d_reserved
    state.shipped += d_shipped
    if d_on_hand or d_reserved or d_shipped:
        conn.execute(
            _INSERT_MOVEMENT,
            {
                "at": at,
                "event_time": event_time or at,
                "node_id": state.node_id,
                "sku": state.sku,
                "kind": kind,
                "d_on_hand": d_on_hand,
                "d_reserved": d_reserved,
                "d_shipped": d_shipped,
                "ref": ref,
                "note": note,
            },
        )
    _low_stock(conn, state, before, at)
    return True


# PostgreSQL: the stock step of a reservation and of a release is one call of the ledger's
# functions (migration 0012: lock in the order given, check, write, log, count capacity), and
# when nothing else is written after it, the COMMIT goes to the server in the same message:
# the hot rows stay locked for the function and the commit, not for round trips to a client
# that shares two cores with fifteen others.
_RESERVE_PG = "SELECT * FROM ledger_reserve(%s, %s, %s::text[], %s::text[], %s::bigint[])"
_RELEASE_PG = "SELECT ledger_release(%s, %s, %s, %s::text[], %s::text[], %s::bigint[])"
#: SQLSTATEs the functions raise: a shortage (DETAIL: [[node, sku, needed, available], ...])
#: and a full node (DETAIL: [node, capacity]).
SHORT_STATE, FULL_STATE = "RC001", "RC002"


def _call_pg(conn: Connection, sql: str, params: Sequence[Any], *, commit: bool) -> list[Any]:
    """Run one ledger function on the driver connection and return its rows; with ``commit``
    the transaction's COMMIT travels in the same message (one round trip for both) and the
    caller must write nothing more. Driver errors come back as SQLAlchemy's (so ``Ledger``
    retries deadlocks as before), the functions' refusals as ``StockRefused``."""
    driver: Any = conn.connection.driver_connection
    rows: list[Any]
    try:
        if commit:
            # One simple-protocol query carries both statements (values bound client side):
            # if the function raises, the server skips the COMMIT and the transaction stays
            # aborted for the caller's rollback.
            rows = client_cursor()(driver).execute(f"{sql}; COMMIT", params).fetchall()
        else:
            rows = driver.execute(sql, params, prepare=True).fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        state = getattr(exc, "sqlstate", None)
        if state in (SHORT_STATE, FULL_STATE):
            detail: str = exc.diag.message_detail
            raise StockRefused(state, json.loads(detail)) from exc
        raise driver_failure(conn, exc, sql, params) from exc
    return rows


@cache
def client_cursor() -> Any:
    import psycopg

    return psycopg.ClientCursor


class StockRefused(Exception):
    """A ledger function refused the stock step (``state``: shortage or full node)."""

    def __init__(self, state: str, detail: Any) -> None:
        super().__init__(state, detail)
        self.state = state
        self.detail = detail


def reserve_rows(
    conn: Connection, need: dict[Key, int], *, at: datetime, ref: str, last: bool = False
) -> dict[Key, int]:
    """Reserve ``need`` units on each stock row, all or none, logging each as a ``reserve``
    movement: ``{}``, or ``{short row: available}`` with nothing written.

    The rows are locked in (node_id, sku) order and checked together first; then the check
    and the write are one guarded statement per row. On PostgreSQL one ``ledger_reserve``
    call does that and the node capacity count (a full node raises ``StockRefused``); with
    ``last`` (nothing else to write) the commit travels with it unless low-stock
    events are on, which are written after it from the rows it returns."""
    keys = sorted(need)
    if conn.dialect.name == "postgresql":
        threshold = outbox.config_of(conn).low_stock_threshold
        try:
            rows = _call_pg(
                conn,
                _RESERVE_PG,
                (
                    ref,
                    at,
                    [n for n, _ in keys],
                    [s for _, s in keys],
                    [need[k] for k in keys],
                ),
                commit=last and threshold <= 0,
            )
        except StockRefused as refused:
            if refused.state != SHORT_STATE:
                raise
            return {(n, s): int(available) for n, s, _, available in refused.detail}
        if threshold > 0:
            for r in rows:
                _low_stock(conn, _row_state(r), int(r[8]), at)
        return {}
    states = lock_rows(conn, keys)
    short = _short(need, states)
    if short:
        return short
    for key in keys:
        if not move(
            conn,
            states[key],
            kind="reserve",
            at=at,
            d_reserved=need[key],
            ref=ref,
            require_available=need[key],
        ):  # the lock makes this unreachable; the guard is the second line
            raise LedgerError("a locked stock row refused a reservation its check allowed")
    return {}


def release_rows(
    conn: Connection,
    need: dict[Key, int],
    *,
    at: datetime,
    ref: str,
    note: str | None,
    last: bool = False,
) -> None:
    """Give back ``need`` reserved units on each stock row, logging each as a ``release``
    movement (rows locked in key order). On PostgreSQL one ``ledger_release`` call, the
    commit travelling with it with ``last``; releasing never lowers available stock, so it
    emits no low-stock event."""
    keys = sorted(need)
    if not keys:
        return
    if conn.dialect.name == "postgresql":
        _call_pg(
            conn,
            _RELEASE_PG,
            (ref, note, at, [n for n, _ in keys], [s for _, s in keys], [need[k] for k in keys]),
            commit=last,
        )
        return
    states = lock_rows(conn, keys)
    for key in keys:
        move(conn, states[key], kind="release", at=at, d_reserved=-need[key], ref=ref, note=note)


def _short(need: dict[Key, int], rows: dict[Key, StockState]) -> dict[Key, int]:
    """Rows whose available stock does not cover the need (absent rows hold 0)."""
    out: dict[Key, int] = {}
    for key in sorted(need):
        available = rows[key].available if key in rows else 0
        if available < need[key]:
            out[key] = available
    return out


def _row_state(r: Sequence[Any]) -> StockState:
    """A ``ledger_reserve`` row (a tuple in the function's column order) as ``StockState``."""
    return StockState(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), r[6], r[7])


def _state(row: Any) -> StockState:
    return StockState(
        row.node_id,
        row.sku,
        int(row.on_hand),
        int(row.reserved),
        int(row.shipped),
        int(row.shortfall),
        row.last_count_at,
        row.last_event_at,
    )


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
