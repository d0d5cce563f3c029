"""Returns inside one transaction: create one against what shipped, then receive what arrived.

Resellable units go back into the receiving node's stock through ``move`` (a ``receipt``
movement referencing the return), so the movement log still replays to every stock row;
damaged units are recorded on the return and never reach stock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from serving.ledger.errors import InvalidReturn, OrderNotFound, ReturnNotFound
from serving.ledger.orders import lock_order, set_status
from serving.ledger.outbox import emit
from serving.ledger.stock_ops import ensure_rows, lock_rows, move
from serving.ledger.tables import order_allocations, return_lines, return_receipts, returns


@dataclass(frozen=True, slots=True)
class ReturnLineView:
    line_id: str
    sku: str
    qty: int
    resellable: int
    damaged: int


@dataclass(frozen=True, slots=True)
class ReturnView:
    return_id: str
    order_id: str
    node_id: str
    status: str
    reason: str | None
    why: str
    created_at: datetime
    lines: list[ReturnLineView]


def view(conn: Connection, return_id: str) -> ReturnView:
    row = conn.execute(select(returns).where(returns.c.return_id == return_id)).one_or_none()
    if row is None:
        raise ReturnNotFound(return_id)
    lines = [
        ReturnLineView(r.line_id, r.sku, int(r.qty), int(r.resellable), int(r.damaged))
        for r in conn.execute(
            select(return_lines)
            .where(return_lines.c.return_id == return_id)
            .order_by(return_lines.c.line_id)
        )
    ]
    return ReturnView(
        row.return_id,
        row.order_id,
        row.node_id,
        row.status,
        row.reason,
        row.why,
        row.created_at,
        lines,
    )


def returnable(conn: Connection, order_id: str) -> dict[str, tuple[str, int]]:
    """line_id → (sku, units shipped and not yet returned)."""
    shipped: dict[str, int] = defaultdict(int)
    skus: dict[str, str] = {}
    for r in conn.execute(
        select(order_allocations.c.line_id, order_allocations.c.sku, order_allocations.c.qty).where(
            order_allocations.c.order_id == order_id, order_allocations.c.status == "shipped"
        )
    ):
        shipped[r.line_id] += int(r.qty)
        skus[r.line_id] = r.sku
    for line_id, qty in conn.execute(
        select(return_lines.c.line_id, func.sum(return_lines.c.qty))
        .join(returns, returns.c.return_id == return_lines.c.return_id)
        .where(returns.c.order_id == order_id)
        .group_by(return_lines.c.line_id)
    ):
        shipped[line_id] -= int(qty)
    return {k: (skus[k], v) for k, v in shipped.items()}


def create(
    conn: Connection,
    order_id: str,
    return_id: str,
    *,
    node_id: str,
    why: str,
    reason: str | None,
    lines: Sequence[tuple[str, int]],
    at: datetime,
) -> ReturnView:
    """Record a return of shipped units to ``node_id``; every line checked against what shipped."""
    if lock_order(conn, order_id) is None:
        raise OrderNotFound(order_id)
    left = returnable(conn, order_id)
    seen: set[str] = set()
    for i, (line_id, qty) in enumerate(lines):
        if line_id in seen:
            raise InvalidReturn(f"lines[{i}].line_id", f"line {line_id!r} appears twice")
        seen.add(line_id)
        if line_id not in left:
            raise InvalidReturn(
                f"lines[{i}].line_id",
                f"line {line_id!r} of order {order_id!r} has not shipped; cancel it instead",
            )
        if qty > left[line_id][1]:
            raise InvalidReturn(
                f"lines[{i}].qty",
                f"line {line_id!r}: {left[line_id][1]} unit(s) shipped and not yet returned, "
                f"cannot return {qty}",
            )
    conn.execute(
        returns.insert().values(
            return_id=return_id,
            order_id=order_id,
            node_id=node_id,
            status="open",
            reason=reason,
            why=why,
            created_at=at,
            updated_at=at,
        )
    )
    conn.execute(
        return_lines.insert(),
        [
            {
                "return_id": return_id,
                "line_id": line_id,
                "sku": left[line_id][0],
                "qty": qty,
                "resellable": 0,
                "damaged": 0,
            }
            for line_id, qty in lines
        ],
    )
    emit(
        conn,
        "return.created",
        {
            "return_id": return_id,
            "node_id": node_id,
            "why": why,
            "reason": reason,
            "lines": [
                {"line_id": line_id, "sku": left[line_id][0], "qty": qty} for line_id, qty in lines
            ],
        },
        at=at,
        order_id=order_id,
    )
    return view(conn, return_id)


def receive(
    conn: Connection,
    return_id: str,
    lines: Sequence[tuple[str, int, str]],
    *,
    at: datetime,
    receipt_id: str | None = None,
) -> tuple[ReturnView, bool]:
    """Record what arrived: resellable units back into the node's stock, damaged ones not.

    A ``receipt_id`` seen before is a resend: the same content changes nothing and returns
    the return as it stands (``True`` = replayed); different content under that id is refused.
    """
    row = conn.execute(
        select(returns).where(returns.c.return_id == return_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise ReturnNotFound(return_id)
    lock_order(conn, row.order_id)
    content = [[line_id, qty, condition] for line_id, qty, condition in lines]
    if receipt_id is not None:
        # read after the locks: a concurrent resend has committed by now, so it is seen here
        seen = conn.execute(
            select(return_receipts).where(return_receipts.c.receipt_id == receipt_id)
        ).one_or_none()
        if seen is not None:
            if seen.return_id != return_id or list(seen.lines) != content:
                raise InvalidReturn(
                    "receipt_id",
                    f"receipt {receipt_id!r} was already recorded with other content"
                    f" (return {seen.return_id}); send a new receipt_id for a new receipt",
                )
            return view(conn, return_id), True
    current = {ln.line_id: ln for ln in view(conn, return_id).lines}
    pending: dict[str, list[int]] = {k: [v.resellable, v.damaged] for k, v in current.items()}
    for i, (line_id, qty, condition) in enumerate(lines):
        if line_id not in current:
            raise InvalidReturn(f"lines[{i}].line_id", f"line {line_id!r} is not in {return_id}")
        got = pending[line_id]
        open_qty = current[line_id].qty - got[0] - got[1]
        if qty > open_qty:
            raise InvalidReturn(
                f"lines[{i}].qty",
                f"line {line_id!r}: {open_qty} unit(s) still expected, cannot receive {qty}",
            )
        got[0 if condition == "resellable" else 1] += qty
    restock: dict[tuple[str, str], int] = defaultdict(int)
    for line_id, qty, condition in lines:
        if condition == "resellable":
            restock[(row.node_id, current[line_id].sku)] += qty
    if restock:
        ensure_rows(conn, restock, at)
        states = lock_rows(conn, restock)
        for key, qty in sorted(restock.items()):
            move(
                conn,
                states[key],
                kind="receipt",
                at=at,
                d_on_hand=qty,
                ref=return_id,
                note="return: resellable",
            )
    for line_id, (resellable, damaged) in pending.items():
        conn.execute(
            update(return_lines)
            .where(return_lines.c.return_id == return_id, return_lines.c.line_id == line_id)
            .values(resellable=resellable, damaged=damaged)
        )
    done = all(current[k].qty == sum(v) for k, v in pending.items())
    status = "received" if done else "open"
    set_status(conn, returns.c.return_id, return_id, status, at)
    payload: dict[str, Any] = {
        "return_id": return_id,
        "node_id": row.node_id,
        "status": status,
        "lines": [
            {"line_id": line_id, "sku": current[line_id].sku, "qty": qty, "condition": condition}
            for line_id, qty, condition in lines
        ],
        "restocked": sum(restock.values()),
    }
    if receipt_id is not None:
        payload["receipt_id"] = receipt_id
        conn.execute(
            return_receipts.insert().values(
                receipt_id=receipt_id, return_id=return_id, lines=content, received_at=at
            )
        )
    emit(conn, "return.received", payload, at=at, order_id=row.order_id)
    return view(conn, return_id), False
