"""The stock step of placements and cancels, which on PostgreSQL is one call of the ledger's
functions with the commit sent in the same message: refusals leave nothing behind, the
refusal names every short row, and concurrent placements and cancels never oversell."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from ledger_testkit import level
from sqlalchemy import Engine, func, select

from serving.ledger import InitialStock, InsufficientStock, Ledger, OrderNotFound
from serving.ledger.errors import CapacityReached
from serving.ledger.outbox import list_events
from serving.ledger.tables import events, movements, order_allocations, orders


def _count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_a_refusal_after_a_written_row_leaves_nothing_and_names_every_short_row(
    ledger: Ledger, engine: Engine
) -> None:
    # Rows in lock order: (dc1, A) covers its need and is written first; (dc1, B) and
    # (st1, A) are short. The refusal lists both, and the first row's write rolls back.
    with pytest.raises(InsufficientStock) as err:
        ledger.reserve_order(
            "o1",
            [("l1", "dc1", "A", 2), ("l2", "dc1", "B", 6), ("l3", "st1", "A", 4)],
            idempotency_key="k1",
            request_hash="h1",
            plan={},
        )
    short = {(m.node_id, m.sku): (m.needed, m.available) for m in err.value.missing}
    assert short == {("dc1", "B"): (6, 5), ("st1", "A"): (4, 3)}
    assert (level(ledger, "dc1", "A").reserved, level(ledger, "dc1", "A").available) == (0, 10)
    assert _count(engine, orders) == 0
    assert _count(engine, order_allocations) == 0
    assert _count(engine, events) == 0
    assert _count(engine, movements, movements.c.ref == "o1") == 0
    with pytest.raises(OrderNotFound):
        ledger.get_order("o1")
    # the key was released with the failure: the same key succeeds once stock allows
    ok = ledger.reserve_order(
        "o1", [("l1", "dc1", "A", 2)], idempotency_key="k1", request_hash="h1", plan={}
    )
    assert not ok.replayed and level(ledger, "dc1", "A").reserved == 2


def test_a_full_node_refuses_after_the_stock_was_written_and_leaves_nothing(
    ledger: Ledger, engine: Engine
) -> None:
    [st2] = [n for n in ledger.nodes() if n.node_id == "st2"]
    ledger.upsert_nodes([replace(st2, daily_capacity=1)])
    ledger.reserve_order("o1", [("l1", "st2", "B", 1)], request_hash="h1", plan={})
    with pytest.raises(CapacityReached):
        ledger.reserve_order(
            "o2", [("l1", "dc1", "A", 1), ("l2", "st2", "B", 1)], request_hash="h2", plan={}
        )
    assert level(ledger, "dc1", "A").reserved == 0 and level(ledger, "st2", "B").reserved == 1
    assert _count(engine, orders) == 1
    assert _count(engine, movements, movements.c.ref == "o2") == 0


def test_cancel_releases_last_and_answers_the_order_as_cancelled(
    ledger: Ledger, engine: Engine
) -> None:
    ledger.reserve_order(
        "o1", [("l1", "dc1", "A", 3), ("l2", "st1", "A", 1)], request_hash="h1", plan={}
    )
    view = ledger.cancel_order("o1")
    assert view.status == "cancelled"
    assert {a.status for a in view.allocations} == {"released"}
    assert view == ledger.get_order("o1")  # the answer is what was committed
    assert level(ledger, "dc1", "A").reserved == 0 and level(ledger, "st1", "A").reserved == 0
    with engine.connect() as conn:
        kinds = Counter(
            conn.execute(select(movements.c.kind).where(movements.c.ref == "o1")).scalars()
        )
    assert kinds == {"reserve": 2, "release": 2}
    assert ledger.cancel_order("o1").status == "cancelled"  # again: nothing more released
    assert _count(engine, movements, movements.c.ref == "o1") == 4


def test_concurrent_placements_and_cancels_on_hot_rows_never_oversell(
    ledger: Ledger, engine: Engine
) -> None:
    ledger.load_stock(
        [InitialStock("st2", "A", 6), InitialStock("st1", "B", 6)], event_time=ledger.clock()
    )
    rows = [("dc1", "A"), ("dc1", "B"), ("st1", "A"), ("st2", "A"), ("st1", "B")]
    start = {r: level(ledger, *r).on_hand for r in rows}
    placed: dict[str, list[tuple[str, str, int]]] = {}
    cancelled: set[str] = set()
    outcomes: Counter[str] = Counter()
    guard = threading.Lock()
    barrier = threading.Barrier(8)

    def client(t: int) -> None:
        rng = random.Random(t)
        mine: list[str] = []
        barrier.wait()
        for i in range(25):
            if mine and rng.random() < 0.3:
                oid = mine.pop(rng.randrange(len(mine)))
                ledger.cancel_order(oid)
                with guard:
                    cancelled.add(oid)
                continue
            oid = f"t{t}-{i}"
            lines = [(*rng.choice(rows), rng.randint(1, 3)) for _ in range(rng.randint(1, 3))]
            try:
                ledger.reserve_order(
                    oid,
                    [(f"l{j}", n, s, q) for j, (n, s, q) in enumerate(lines)],
                    request_hash=oid,
                    plan={},
                )
            except InsufficientStock:
                with guard:
                    outcomes["short"] += 1
                continue
            mine.append(oid)
            with guard:
                placed[oid] = lines
                outcomes["placed"] += 1

    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert outcomes["placed"] > 0 and outcomes["short"] > 0  # contended, and refused some
    open_need: Counter[tuple[str, str]] = Counter()
    for oid, lines in placed.items():
        if oid not in cancelled:
            for n, s, q in lines:
                open_need[(n, s)] += q
    for r in rows:
        lv = level(ledger, *r)
        assert lv.reserved == open_need[r], r  # every acknowledged order, nothing else
        assert 0 <= lv.reserved <= start[r] and lv.on_hand == start[r], r
    assert _count(engine, orders) == len(placed)
    assert ledger.check().clean  # the movement log replays to every row


def test_pooled_sessions_the_server_ended_are_replaced_not_used(
    ledger: Ledger, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL sessions only")
    # Several pooled sessions, all idle, then ended by the server (as a restart ends them).
    conns = [engine.connect() for _ in range(3)]
    for c in conns:
        c.exec_driver_sql("SELECT 1")
    for c in conns:
        c.close()
    with engine.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        conn.commit()
        for _ in range(200):  # until the ended sessions are gone
            left = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).scalar_one()
            conn.rollback()
            if left == 0:
                break
            time.sleep(0.01)
    for i in range(6):  # each checks out a pooled session: none of the dead ones is used
        ledger.reserve_order(f"o{i}", [("l1", "dc1", "A", 1)], request_hash=f"h{i}", plan={})
    assert level(ledger, "dc1", "A").reserved == 6


def test_the_placed_event_goes_in_with_the_order_and_the_next_one_follows(
    ledger: Ledger, engine: Engine
) -> None:
    lines = [("l1", "dc1", "A", 2), ("l2", "st1", "A", 1)]
    ledger.reserve_order("o1", lines, request_hash="h1", plan={})
    ledger.reserve_order("o1", lines, request_hash="h1", plan={})  # a replay writes no event
    ledger.cancel_order("o1")
    with engine.connect() as conn:
        placed, cancelled = list_events(conn, order_id="o1")
    assert (placed.type, placed.sequence, cancelled.type, cancelled.sequence) == (
        "order.placed",
        1,
        "order.cancelled",
        2,
    )
    assert placed.payload == {
        "id": placed.event_id,
        "type": "order.placed",
        "timestamp": ledger.clock().isoformat(),
        "subject": "o1",
        "sequence": 1,
        "data": {
            "order_id": "o1",
            "status": "placed",
            "allocations": [
                {"line_id": "l1", "node_id": "dc1", "sku": "A", "qty": 2},
                {"line_id": "l2", "node_id": "st1", "sku": "A", "qty": 1},
            ],
        },
    }


def test_a_cancel_that_waited_for_a_shipment_releases_only_what_is_still_reserved(
    ledger: Ledger, engine: Engine
) -> None:
    # On PostgreSQL the cancel locks the order and reads its allocations in one statement.
    # A shipment holds the order's lock when the cancel arrives: once it commits, the cancel
    # must see the shipped line as shipped (not as the statement's start saw it) and release
    # only the other line; releasing the shipped one again would take its units twice.
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL only (SQLite serialises writers)")
    from serving.ledger import orders as order_ops

    ledger.reserve_order(
        "o1", [("l1", "dc1", "A", 2), ("l2", "dc1", "B", 1)], request_hash="h1", plan={}
    )
    done: list[Any] = []
    with engine.connect() as conn:
        tx = conn.begin()
        order_ops.ship(conn, "o1", ["l1"], at=ledger.clock())  # holds the order's lock
        cancel = threading.Thread(target=lambda: done.append(ledger.cancel_order("o1")))
        cancel.start()
        with engine.connect() as probe:  # wait until the cancel waits for that lock
            waiting = 0
            for _ in range(3000):
                waiting = probe.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                ).scalar_one()
                probe.rollback()
                if waiting:
                    break
                time.sleep(0.01)
            assert waiting, "the cancel never waited for the shipment's lock"
        tx.commit()
    cancel.join()
    assert len(done) == 1
    view = done[0]
    assert {a.line_id: a.status for a in view.allocations} == {"l1": "shipped", "l2": "released"}
    a, b = level(ledger, "dc1", "A"), level(ledger, "dc1", "B")
    assert (a.on_hand, a.reserved, b.on_hand, b.reserved) == (8, 0, 5, 0)
    assert ledger.check().clean
