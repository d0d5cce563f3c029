"""Drift check: replay the append-only movement log and compare it with the stock rows.

Rows can drift only through writes that bypass the ledger (manual SQL, restores). The log is
append-only (database triggers refuse UPDATE/DELETE), so it is the side repair trusts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from serving.ledger.records import DriftReport, DriftRow
from serving.ledger.tables import movements, stock

Totals = tuple[int, int, int]


def replay(conn: Connection) -> dict[tuple[str, str], Totals]:
    """(on_hand, reserved, shipped) per node×SKU as the movement log says."""
    query = select(
        movements.c.node_id,
        movements.c.sku,
        func.sum(movements.c.d_on_hand),
        func.sum(movements.c.d_reserved),
        func.sum(movements.c.d_shipped),
    ).group_by(movements.c.node_id, movements.c.sku)
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in conn.execute(query)}


def rows(conn: Connection) -> dict[tuple[str, str], Totals]:
    query = select(stock.c.node_id, stock.c.sku, stock.c.on_hand, stock.c.reserved, stock.c.shipped)
    return {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in conn.execute(query)}


def check(conn: Connection, *, repair: bool, at: datetime) -> DriftReport:
    """Compare rows with the log; with ``repair`` set each drifted row to the log's totals."""
    logged = replay(conn)
    current = rows(conn)
    drifted: list[DriftRow] = []
    for key in sorted(set(logged) | set(current)):
        row = current.get(key, (0, 0, 0))
        log = logged.get(key, (0, 0, 0))
        if row != log:
            drifted.append(DriftRow(key[0], key[1], *row, *log))
    if repair:
        for d in drifted:
            # A zero movement marks the row as moved for the log's followers (the routing
            # stock cache, the live features) without changing what the log replays to.
            conn.execute(
                insert(movements).values(
                    at=at,
                    event_time=at,
                    node_id=d.node_id,
                    sku=d.sku,
                    kind="delta",
                    d_on_hand=0,
                    d_reserved=0,
                    d_shipped=0,
                    ref="drift-repair",
                    note=f"row was {d.row_on_hand}/{d.row_reserved}/{d.row_shipped}",
                )
            )
            values = {
                "on_hand": d.log_on_hand,
                "reserved": d.log_reserved,
                "shipped": d.log_shipped,
                "updated_at": at,
            }
            if (d.node_id, d.sku) in current:
                conn.execute(
                    update(stock)
                    .where(stock.c.node_id == d.node_id, stock.c.sku == d.sku)
                    .values(**values)
                )
            else:
                conn.execute(
                    insert(stock).values(node_id=d.node_id, sku=d.sku, shortfall=0, **values)
                )
    return DriftReport(checked=len(set(logged) | set(current)), drifted=drifted, repaired=repair)
