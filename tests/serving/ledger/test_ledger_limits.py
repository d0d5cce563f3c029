"""Limits the ledger enforces itself, on SQLite and PostgreSQL: daily capacity counted inside
the reservation transaction (node-local day, cancelled orders free their slot) and inventory
events stamped beyond the clock-skew allowance or outside the storable range."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ledger_testkit import Clock, level

from serving.ledger import InitialStock, InvalidLedgerRequest, InventoryEvent, Ledger
from serving.ledger.errors import CapacityReached


def _capacity(ledger: Ledger, node_id: str, capacity: int) -> None:
    [rec] = [n for n in ledger.nodes() if n.node_id == node_id]
    ledger.upsert_nodes([replace(rec, daily_capacity=capacity)])


def _place(ledger: Ledger, oid: str, node: str = "st2", sku: str = "B") -> Any:
    return ledger.reserve_order(oid, [("l1", node, sku, 1)], request_hash=oid, plan={})


def test_capacity_is_counted_in_the_reservation(ledger: Ledger) -> None:
    _capacity(ledger, "st2", 2)
    _place(ledger, "o1")
    _place(ledger, "o2")
    with pytest.raises(CapacityReached) as err:
        _place(ledger, "o3")
    assert err.value.status == 409 and err.value.extra["node_id"] == "st2"
    assert level(ledger, "st2", "B").reserved == 2  # the refused order reserved nothing
    _place(ledger, "o2")  # a replay of a counted order is not refused
    ledger.cancel_order("o1")  # a cancelled order frees its slot
    _place(ledger, "o4")


def test_capacity_day_is_the_nodes_local_day(ledger: Ledger, clock: Clock) -> None:
    # st1 is in São Paulo (UTC-3): 02:00 UTC is still the previous local day.
    clock.now = datetime(2025, 3, 11, 2, 0, tzinfo=UTC)
    _capacity(ledger, "st1", 1)
    _place(ledger, "late", node="st1", sku="A")
    clock.now = datetime(2025, 3, 11, 2, 30, tzinfo=UTC)  # same local day (23:30)
    with pytest.raises(CapacityReached):
        _place(ledger, "later", node="st1", sku="A")
    assert ledger.orders_today()["st1"] == 1
    clock.now = datetime(2025, 3, 11, 3, 30, tzinfo=UTC)  # 00:30 local: a new day
    _place(ledger, "next-day", node="st1", sku="A")


def test_concurrent_orders_never_exceed_capacity(ledger: Ledger) -> None:
    ledger.adjust([InventoryEvent("big", ledger.clock(), "st2", "B", "count", 100)])
    _capacity(ledger, "st2", 2)
    barrier = threading.Barrier(16)

    def run(i: int) -> bool:
        barrier.wait()
        try:
            _place(ledger, f"c{i}")
        except CapacityReached:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        placed = sum(pool.map(run, range(16)))
    assert placed == 2
    assert level(ledger, "st2", "B").reserved == 2


def test_event_stamped_ahead_of_the_clock_is_refused(ledger: Ledger, clock: Clock) -> None:
    ahead = clock() + timedelta(minutes=10)
    with pytest.raises(InvalidLedgerRequest) as err:
        ledger.adjust([InventoryEvent("future", ahead, "dc1", "A", "count", 99)])
    assert err.value.extra["field"] == "events.0.event_time"
    assert level(ledger, "dc1", "A").on_hand == 10
    # within the clock-skew allowance: applied, and later real counts still apply
    [r] = ledger.adjust(
        [InventoryEvent("skew", clock() + timedelta(minutes=2), "dc1", "A", "count", 7)]
    )
    assert r.outcome == "applied"
    clock.advance(minutes=3)
    [r2] = ledger.adjust([InventoryEvent("real", clock(), "dc1", "A", "count", 6)])
    assert (r2.outcome, r2.on_hand) == ("applied", 6)


@pytest.mark.parametrize("when", [datetime(1, 1, 2, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)])
def test_event_outside_the_storable_range_is_refused(ledger: Ledger, when: datetime) -> None:
    with pytest.raises(InvalidLedgerRequest):
        ledger.adjust([InventoryEvent("far", when, "dc1", "A", "delta", 1)])
    with pytest.raises(InvalidLedgerRequest):
        ledger.load_stock([InitialStock("dc1", "A", 1)], event_time=when)
