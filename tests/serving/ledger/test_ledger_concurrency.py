"""Concurrent placements: each thread has its own connection and transaction, like API workers."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledger_testkit import level
from sqlalchemy import Engine, func, select

from serving.ledger import InitialStock, InsufficientStock, InventoryEvent, Ledger
from serving.ledger.tables import orders


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Start ``n`` calls together and collect each result or exception."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(run, range(n)))


def test_fifty_buyers_for_ten_units_reserve_exactly_ten(
    ledger: Ledger, engine: Engine, clock: Any
) -> None:
    results = _race(
        50,
        lambda i: ledger.reserve_order(
            f"o{i}", [("l1", "dc1", "A", 1)], request_hash=f"h{i}", plan={}
        ),
    )
    kinds = Counter(type(r).__name__ for r in results)
    assert kinds == {"Reservation": 10, "InsufficientStock": 40}
    a = level(ledger, "dc1", "A")
    assert (a.on_hand, a.reserved, a.available) == (10, 10, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 10
    for r in results:
        if isinstance(r, InsufficientStock):
            assert r.missing[0].needed == 1 and r.missing[0].available == 0


def test_multi_row_orders_in_opposite_orders_do_not_deadlock(ledger: Ledger) -> None:
    ledger.load_stock(
        [InitialStock("st1", "B", 20), InitialStock("dc1", "A", 20)], event_time=ledger.clock()
    )
    rng = random.Random(5)
    plans = []
    for _ in range(30):
        lines = [("la", "dc1", "A", 1), ("lb", "st1", "B", 1), ("lc", "st2", "B", 1)]
        rng.shuffle(lines)
        plans.append(lines)
    results = _race(
        30, lambda i: ledger.reserve_order(f"o{i}", plans[i], request_hash=f"h{i}", plan={})
    )
    kinds = Counter(type(r).__name__ for r in results)
    # st2/B has 7 units: exactly seven orders fit, the rest fail cleanly
    assert kinds == {"Reservation": 7, "InsufficientStock": 23}
    assert level(ledger, "st2", "B").available == 0
    assert level(ledger, "dc1", "A").reserved == 7


def test_duplicate_requests_with_one_key_reserve_once(ledger: Ledger) -> None:
    results = _race(
        12,
        lambda i: ledger.reserve_order(
            "o1",
            [("l1", "dc1", "A", 3)],
            idempotency_key="key-1",
            request_hash="same",
            plan={},
        ),
    )
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(not r.replayed for r in results) == 1
    assert {r.order_id for r in results} == {"o1"}
    assert all(r.response == results[0].response for r in results)
    assert level(ledger, "dc1", "A").reserved == 3


def test_concurrent_claims_let_exactly_one_worker_through(ledger: Ledger) -> None:
    results = _race(10, lambda i: ledger.begin_idempotent("key-2", "same"))
    claimed = [r for r in results if not isinstance(r, Exception)]
    assert len(claimed) == 1 and claimed[0].state == "claimed"
    assert {type(r).__name__ for r in results if isinstance(r, Exception)} == {
        "IdempotencyInFlight"
    }
    ledger.release_idempotent("key-2", "same")


def test_concurrent_cancel_and_ship_never_double_release(ledger: Ledger) -> None:
    for i in range(6):
        ledger.reserve_order(f"o{i}", [("l1", "dc1", "A", 1)], request_hash=f"h{i}", plan={})
    results = _race(
        12,
        lambda i: ledger.cancel_order(f"o{i % 6}") if i < 6 else ledger.ship_order(f"o{i % 6}"),
    )
    assert {type(r).__name__ for r in results} <= {"OrderView", "OrderStateError"}
    a = level(ledger, "dc1", "A")
    assert a.reserved == 0
    assert a.on_hand + a.shipped == 10


def test_the_same_adjustment_from_many_channels_applies_once(ledger: Ledger) -> None:
    event = InventoryEvent("recv-1", ledger.clock(), "dc1", "A", "delta", 5)
    results = _race(8, lambda i: ledger.adjust([event])[0])
    assert all(not isinstance(r, Exception) for r in results), results
    assert sorted(r.outcome for r in results) == ["applied"] + ["duplicate"] * 7
    assert level(ledger, "dc1", "A").on_hand == 15


def test_sqlite_writers_of_one_process_queue_on_one_lock(ledger: Ledger, engine: Engine) -> None:
    """On SQLite a writer thread waits on the process's lock (woken when the writer before it
    finishes) rather than polling the file lock; PostgreSQL writers take no such lock."""
    from serving.ledger.db import writer_lock

    lock = writer_lock(engine)
    if engine.dialect.name != "sqlite":
        assert not isinstance(lock, type(threading.RLock()))
        return
    assert writer_lock(engine) is lock
    done = threading.Event()

    def write() -> None:
        ledger.adjust([InventoryEvent("recv-q", ledger.clock(), "dc1", "A", "delta", 1)])
        done.set()

    with lock:
        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.3)  # queued behind the lock this thread holds
    writer.join(10)
    assert done.is_set()
    assert level(ledger, "dc1", "A").on_hand == 11
