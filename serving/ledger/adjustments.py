"""Inventory adjustments from any channel (counts and deltas) and the initial stock load.

Ordering rules, so late or repeated messages cannot corrupt stock:

* every event is applied at most once (``inventory_events.event_id``);
* a count older than the node×SKU's last count is ``stale`` and ignored;
* a count at time T is rebased by the on-hand movements the ledger logged after T
  (later deltas, shipments), because the count describes the shelf at T, not now;
* a delta at or before the last count is ``stale``: the count already includes it;
* reservations are never dropped: if the new on-hand is below ``reserved``, on-hand is
  clipped to ``reserved`` (available 0) and the missing units are kept in ``shortfall``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection

from routing.calendar import EARLIEST, LATEST, within_bounds
from serving.ledger.errors import InvalidLedgerRequest, UnknownNode
from serving.ledger.records import AdjustOutcome, AdjustResult, InitialStock, InventoryEvent
from serving.ledger.stock_ops import (
    StockState,
    chunks,
    ensure_rows,
    known_nodes,
    lock_rows,
    move,
    on_hand_moved_after,
)
from serving.ledger.tables import UTCDateTime, inventory_events, movements, stock

#: How far ahead of the ledger's clock an event may be stamped (clocks of tills and
#: warehouse systems drift). A count stamped later would make every real count ``stale``.
MAX_FUTURE = timedelta(minutes=5)


def validate_events(events: Sequence[InventoryEvent], *, now: datetime | None = None) -> None:
    for i, e in enumerate(events):
        where = {"field": f"events.{i}.event_time"}
        if e.kind not in ("count", "delta"):
            raise InvalidLedgerRequest(
                f"event {e.event_id}: kind must be count or delta", field=f"events.{i}.kind"
            )
        if e.kind == "count" and e.qty < 0:
            raise InvalidLedgerRequest(
                f"event {e.event_id}: a count cannot be negative", field=f"events.{i}.qty"
            )
        if e.event_time.tzinfo is None:
            raise InvalidLedgerRequest(f"event {e.event_id}: event_time needs a time zone", **where)
        if not within_bounds(e.event_time):
            raise InvalidLedgerRequest(
                f"event {e.event_id}: event_time must lie between {EARLIEST:%Y} and {LATEST:%Y}",
                **where,
            )
        if now is not None and e.event_time > now + MAX_FUTURE:
            raise InvalidLedgerRequest(
                f"event {e.event_id}: event_time {e.event_time.isoformat()} is more than "
                f"{int(MAX_FUTURE.total_seconds() // 60)} minutes ahead of the ledger clock "
                f"({now.isoformat(timespec='seconds')}); fix the sender's clock and send again",
                **where,
            )


def _set_true_on_hand(
    conn: Connection,
    state: StockState,
    true_on_hand: int,
    *,
    kind: str,
    at: datetime,
    event_time: datetime,
    ref: str,
    is_count: bool,
) -> None:
    target = max(true_on_hand, 0)
    new_on_hand = max(target, state.reserved)
    shortfall = new_on_hand - target
    extra: dict[str, object] = {"shortfall": shortfall}
    last_event = max(filter(None, (state.last_event_at, event_time)))
    extra["last_event_at"] = last_event
    if is_count:
        extra["last_count_at"] = event_time
    move(
        conn,
        state,
        kind=kind,
        at=at,
        event_time=event_time,
        d_on_hand=new_on_hand - state.on_hand,
        ref=ref,
        extra=extra,
    )
    state.shortfall = shortfall
    state.last_event_at = last_event
    if is_count:
        state.last_count_at = event_time


def adjust(
    conn: Connection, events: Sequence[InventoryEvent], *, at: datetime
) -> list[AdjustResult]:
    """Apply a batch of events in event-time order; results come back in input order."""
    validate_events(events)
    missing = {e.node_id for e in events} - known_nodes(conn, {e.node_id for e in events})
    if missing:
        raise UnknownNode(sorted(missing))

    keys = {(e.node_id, e.sku) for e in events}
    ensure_rows(conn, keys, at)
    states = lock_rows(conn, keys)
    # Read applied event ids only after the row locks: a concurrent batch carrying the same
    # events has committed by now, so its events count as duplicates instead of a lost race.
    ids = sorted({e.event_id for e in events})
    seen: dict[str, str | None] = {}
    for part in chunks(ids):
        seen.update(
            conn.execute(
                select(inventory_events.c.event_id, inventory_events.c.source).where(
                    inventory_events.c.event_id.in_(part)
                )
            ).all()
        )

    results: dict[str, AdjustResult] = {}
    for e in sorted(events, key=lambda ev: (ev.event_time, ev.event_id)):
        state = states[(e.node_id, e.sku)]
        outcome: AdjustOutcome
        if e.event_id in seen:
            outcome = "duplicate"
        else:
            seen[e.event_id] = e.source
            last_count = state.last_count_at
            if e.kind == "count":
                outcome = (
                    "stale" if last_count is not None and e.event_time < last_count else "applied"
                )
            else:
                outcome = (
                    "stale" if last_count is not None and e.event_time <= last_count else "applied"
                )
            if outcome == "applied":
                if e.kind == "count":
                    true = e.qty + on_hand_moved_after(conn, (e.node_id, e.sku), e.event_time)
                else:
                    true = state.on_hand - state.shortfall + e.qty
                _set_true_on_hand(
                    conn,
                    state,
                    true,
                    kind=e.kind,
                    at=at,
                    event_time=e.event_time,
                    ref=e.event_id,
                    is_count=e.kind == "count",
                )
            conn.execute(
                inventory_events.insert().values(
                    event_id=e.event_id,
                    event_time=e.event_time,
                    node_id=e.node_id,
                    sku=e.sku,
                    kind=e.kind,
                    qty=e.qty,
                    outcome=outcome,
                    received_at=at,
                    source=e.source,
                )
            )
        results.setdefault(
            e.event_id,
            AdjustResult(
                event_id=e.event_id,
                outcome=outcome,
                node_id=e.node_id,
                sku=e.sku,
                on_hand=state.on_hand,
                reserved=state.reserved,
                available=state.available,
                shortfall=state.shortfall,
                source=seen[e.event_id],
            ),
        )
    return [results[e.event_id] for e in events]


def load_stock(
    conn: Connection, rows: Sequence[InitialStock], *, event_time: datetime, at: datetime
) -> int:
    """Set on-hand for many node×SKUs as a count at ``event_time``; returns rows changed.

    Rows counted more recently than ``event_time`` are left alone (same rule as counts).
    """
    if any(r.on_hand < 0 for r in rows):
        raise InvalidLedgerRequest("on_hand must be >= 0 in a stock load")
    if not within_bounds(event_time):
        raise InvalidLedgerRequest(
            f"a stock load's event_time must lie between {EARLIEST:%Y} and {LATEST:%Y}"
        )
    latest: dict[tuple[str, str], int] = {}
    for r in rows:
        latest[(r.node_id, r.sku)] = r.on_hand
    missing = {n for n, _ in latest} - known_nodes(conn, {n for n, _ in latest})
    if missing:
        raise UnknownNode(sorted(missing))
    ensure_rows(conn, latest, at)
    states = lock_rows(conn, latest)
    moved_after = {
        (r.node_id, r.sku): int(r.total)
        for r in conn.execute(
            select(
                movements.c.node_id, movements.c.sku, func.sum(movements.c.d_on_hand).label("total")
            )
            .where(movements.c.event_time > event_time)
            .group_by(movements.c.node_id, movements.c.sku)
        )
    }
    # Rows are locked, so absolute values are safe; executemany keeps a 10k-row load to two
    # round trips per chunk instead of two statements per row.
    updates: list[dict[str, object]] = []
    logged: list[dict[str, object]] = []
    for key, qty in sorted(latest.items()):
        state = states[key]
        if state.last_count_at is not None and event_time < state.last_count_at:
            continue
        target = max(qty + moved_after.get(key, 0), 0)
        on_hand = max(target, state.reserved)
        last_event = max(filter(None, (state.last_event_at, event_time)))
        updates.append(
            {
                "k_node": key[0],
                "k_sku": key[1],
                "v_on_hand": on_hand,
                "v_shortfall": on_hand - target,
                "v_count": event_time,
                "v_event": last_event,
            }
        )
        if on_hand != state.on_hand:
            logged.append(
                {
                    "at": at,
                    "event_time": event_time,
                    "node_id": key[0],
                    "sku": key[1],
                    "kind": "count",
                    "d_on_hand": on_hand - state.on_hand,
                    "d_reserved": 0,
                    "d_shipped": 0,
                    "ref": "load",
                    "note": None,
                }
            )
    stmt = (
        update(stock)
        .where(stock.c.node_id == bindparam("k_node"), stock.c.sku == bindparam("k_sku"))
        .values(
            on_hand=bindparam("v_on_hand"),
            shortfall=bindparam("v_shortfall"),
            last_count_at=bindparam("v_count", type_=UTCDateTime()),
            last_event_at=bindparam("v_event", type_=UTCDateTime()),
            updated_at=at,
        )
    )
    for part in chunks(updates, 2000):
        conn.execute(stmt, list(part))
    for part in chunks(logged, 2000):
        conn.execute(movements.insert(), list(part))
    return len(updates)
