"""Whole-ledger invariants, for tests and for an operator's health check.

They state what "never oversell, never lose an order" means in rows: every bucket is
non-negative, on_hand = available + reserved, the movement log replays to every row, and a
row's ``reserved`` equals the reserved allocations that point at it.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine, func, select

from serving.ledger.drift import replay, rows
from serving.ledger.tables import order_allocations, orders, return_lines, returns, stock


def violations(engine: Engine) -> list[str]:
    """Human-readable list of broken invariants; empty means the ledger is consistent."""
    problems: list[str] = []
    with engine.connect().execution_options(ledger_readonly=True) as conn, conn.begin():
        for r in conn.execute(select(stock)):
            name_ = f"{r.node_id}/{r.sku}"
            if r.on_hand != r.available + r.reserved:
                problems.append(
                    f"{name_}: on_hand {r.on_hand} != available {r.available} + reserved {r.reserved}"
                )
            for name in ("on_hand", "reserved", "available", "shipped", "shortfall"):
                if getattr(r, name) < 0:
                    problems.append(f"{name_}: {name} is negative ({getattr(r, name)})")
        logged, current = replay(conn), rows(conn)
        for key in sorted(set(logged) | set(current)):
            if logged.get(key, (0, 0, 0)) != current.get(key, (0, 0, 0)):
                problems.append(
                    f"{key}: row {current.get(key)} != movement replay {logged.get(key)}"
                )
        held: dict[tuple[str, str], int] = defaultdict(int)
        query = (
            select(
                order_allocations.c.node_id,
                order_allocations.c.sku,
                func.sum(order_allocations.c.qty),
            )
            .where(order_allocations.c.status == "reserved")
            .group_by(order_allocations.c.node_id, order_allocations.c.sku)
        )
        for node_id, sku, qty in conn.execute(query):
            held[(node_id, sku)] = int(qty)
        for key in sorted(set(held) | set(current)):
            row_reserved = current.get(key, (0, 0, 0))[1]
            if held.get(key, 0) != row_reserved:
                problems.append(
                    f"{key}: reserved {row_reserved} != reserved allocations {held.get(key, 0)}"
                )
        dangling = conn.execute(
            select(func.count())
            .select_from(order_allocations)
            .where(order_allocations.c.status == "reserved")
            .where(
                order_allocations.c.order_id.in_(
                    select(orders.c.order_id).where(orders.c.status.in_(("cancelled", "shipped")))
                )
            )
        ).scalar_one()
        if dangling:
            problems.append(
                f"{dangling} reserved allocation(s) belong to cancelled or shipped orders"
            )
        shipped: dict[tuple[str, str], int] = defaultdict(int)
        for order_id, line_id, qty in conn.execute(
            select(
                order_allocations.c.order_id,
                order_allocations.c.line_id,
                func.sum(order_allocations.c.qty),
            )
            .where(order_allocations.c.status == "shipped")
            .group_by(order_allocations.c.order_id, order_allocations.c.line_id)
        ):
            shipped[(order_id, line_id)] = int(qty)
        for order_id, line_id, qty in conn.execute(
            select(returns.c.order_id, return_lines.c.line_id, func.sum(return_lines.c.qty))
            .join(returns, returns.c.return_id == return_lines.c.return_id)
            .group_by(returns.c.order_id, return_lines.c.line_id)
        ):
            if int(qty) > shipped.get((order_id, line_id), 0):
                problems.append(
                    f"order {order_id} line {line_id}: {qty} returned but "
                    f"{shipped.get((order_id, line_id), 0)} shipped"
                )
    return problems
