"""Adjustments from any channel, stock loads, drift repair and the decision audit."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from ledger_testkit import T0, Clock, level
from sqlalchemy import Engine, update

from serving.ledger import (
    InitialStock,
    InsufficientStock,
    InvalidLedgerRequest,
    InventoryEvent,
    Ledger,
    OrderStateError,
    UnknownNode,
)
from serving.ledger.tables import stock


@pytest.fixture
def clock() -> Clock:
    """The ledger's clock a day after ``T0``: the events below (T0 + hours) are in its past,
    as real counts are (a count stamped ahead of the clock is refused)."""
    return Clock(T0 + timedelta(days=1))


def _count(eid: str, hours: float, qty: int, node: str = "dc1", sku: str = "A") -> InventoryEvent:
    return InventoryEvent(eid, T0 + timedelta(hours=hours), node, sku, "count", qty)


def _delta(eid: str, hours: float, qty: int, node: str = "dc1", sku: str = "A") -> InventoryEvent:
    return InventoryEvent(eid, T0 + timedelta(hours=hours), node, sku, "delta", qty)


def test_count_sets_on_hand_and_is_idempotent(ledger: Ledger) -> None:
    [r] = ledger.adjust([_count("e1", 1, 25)])
    assert (r.outcome, r.on_hand, r.available) == ("applied", 25, 25)
    [again] = ledger.adjust([_count("e1", 1, 25)])
    assert again.outcome == "duplicate"
    [d] = ledger.adjust([_delta("e2", 2, -5)])
    [d2] = ledger.adjust([_delta("e2", 2, -5)])
    assert (d.outcome, d2.outcome) == ("applied", "duplicate")
    assert level(ledger, "dc1", "A").on_hand == 20


def test_older_count_never_overwrites_a_newer_one(ledger: Ledger) -> None:
    ledger.adjust([_count("new", 5, 12)])
    [old] = ledger.adjust([_count("old", 4, 99)])
    assert old.outcome == "stale"
    assert level(ledger, "dc1", "A").on_hand == 12


def test_delta_before_the_last_count_is_already_in_it(ledger: Ledger) -> None:
    ledger.adjust([_count("c", 5, 12)])
    [late] = ledger.adjust([_delta("d", 4, -3)])
    assert late.outcome == "stale"
    assert level(ledger, "dc1", "A").on_hand == 12


def test_late_count_is_rebased_by_later_movements(ledger: Ledger) -> None:
    ledger.adjust([_delta("d", 3, +4)])  # 10 -> 14, received first
    [c] = ledger.adjust([_count("c", 2, 8)])  # shelf had 8 at 2h; the +4 came after
    assert (c.outcome, c.on_hand) == ("applied", 12)


def test_batch_is_applied_in_event_time_order(ledger: Ledger) -> None:
    results = ledger.adjust([_delta("d2", 3, -1), _count("c", 1, 6), _delta("d1", 2, +2)])
    assert [r.outcome for r in results] == ["applied", "applied", "applied"]
    assert level(ledger, "dc1", "A").on_hand == 7


def test_count_below_reserved_keeps_reservations_and_flags_shortfall(ledger: Ledger) -> None:
    ledger.reserve_order("o1", [("l1", "dc1", "A", 6)], request_hash="h", plan={})
    [r] = ledger.adjust([_count("c", 1, 4)])
    assert (r.on_hand, r.reserved, r.available, r.shortfall) == (6, 6, 0, 2)
    [d] = ledger.adjust([_delta("d", 2, 5)])  # receipt covers the missing two first
    assert (d.on_hand, d.available, d.shortfall) == (9, 3, 0)
    assert ledger.get_order("o1").allocations[0].status == "reserved"


def test_unknown_node_rejects_the_whole_batch(ledger: Ledger) -> None:
    with pytest.raises(UnknownNode):
        ledger.adjust([_count("ok", 1, 3), _count("bad", 1, 3, node="ghost")])
    assert level(ledger, "dc1", "A").on_hand == 10
    assert ledger.adjust([_count("ok", 1, 3)])[0].outcome == "applied"


def test_invalid_events_are_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidLedgerRequest):
        ledger.adjust([_count("neg", 1, -1)])
    with pytest.raises(InvalidLedgerRequest):
        ledger.adjust([InventoryEvent("naive", T0.replace(tzinfo=None), "dc1", "A", "count", 1)])


def test_new_sku_at_a_node_gets_a_row(ledger: Ledger) -> None:
    ledger.adjust([_delta("d", 1, 4, node="st1", sku="Z")])
    assert level(ledger, "st1", "Z").available == 4


def test_load_respects_newer_counts(ledger: Ledger) -> None:
    ledger.adjust([_count("c", 5, 12)])
    changed = ledger.load_stock(
        [InitialStock("dc1", "A", 1), InitialStock("dc1", "C", 9)],
        event_time=T0 + timedelta(hours=1),
    )
    assert changed == 1
    assert level(ledger, "dc1", "A").on_hand == 12
    assert level(ledger, "dc1", "C").on_hand == 9
    with pytest.raises(UnknownNode):
        ledger.load_stock([InitialStock("ghost", "A", 1)], event_time=T0)


def test_availability_filters_by_sku_and_node(ledger: Ledger) -> None:
    rows = ledger.availability(["A"])
    assert [(r.node_id, r.available) for r in rows] == [("dc1", 10), ("st1", 3)]
    assert [r.sku for r in ledger.availability(["A", "B"], node_ids=["dc1"])] == ["A", "B"]
    assert len(ledger.availability()) == 4


def test_drift_is_detected_and_repaired_from_the_log(ledger: Ledger, engine: Engine) -> None:
    ledger.reserve_order("o1", [("l1", "dc1", "A", 2)], request_hash="h", plan={})
    assert ledger.check().clean
    with engine.begin() as conn:  # a manual edit that bypassed the ledger
        conn.execute(
            update(stock).where(stock.c.node_id == "dc1", stock.c.sku == "A").values(on_hand=50)
        )
    report = ledger.check()
    assert [(d.node_id, d.sku, d.row_on_hand, d.log_on_hand) for d in report.drifted] == [
        ("dc1", "A", 50, 10)
    ]
    assert level(ledger, "dc1", "A").on_hand == 50  # check alone changes nothing
    assert ledger.check(repair=True).repaired
    assert ledger.check().clean
    a = level(ledger, "dc1", "A")
    assert (a.on_hand, a.reserved) == (10, 2)


def test_decisions_are_recorded_once(ledger: Ledger) -> None:
    kwargs = dict(
        request={"lines": [{"sku": "A", "qty": 1}]},
        plan={"dc1": ["l1"]},
        model_versions={"stockout": "3"},
        mode="predictive",
        order_id="o1",
    )
    assert ledger.record_decision("d1", **kwargs) is True  # type: ignore[arg-type]
    assert ledger.record_decision("d1", **kwargs) is False  # type: ignore[arg-type]
    rec = ledger.get_decision("d1")
    assert rec is not None
    assert (rec.plan, rec.model_versions, rec.mode, rec.degraded) == (
        {"dc1": ["l1"]},
        {"stockout": "3"},
        "predictive",
        False,
    )
    assert rec.created_at == T0 + timedelta(days=1)
    assert ledger.get_decision("nope") is None


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operation_mix_keeps_every_invariant(
    ledger: Ledger, clock: Clock, seed: int
) -> None:
    """Behavioural: a seeded random walk over every operation; fixture teardown checks invariants."""
    rng = random.Random(seed)
    open_orders: list[str] = []
    nodes_skus = [("dc1", "A"), ("dc1", "B"), ("st1", "A"), ("st2", "B")]
    for step in range(60):
        clock.advance(minutes=1)
        op = rng.choice(["place", "place", "cancel", "ship", "reject", "adjust"])
        try:
            if op == "place":
                n, s = rng.choice(nodes_skus)
                oid = f"o{step}"
                ledger.reserve_order(
                    oid, [("l1", n, s, rng.randint(1, 4))], request_hash=oid, plan={}
                )
                open_orders.append(oid)
            elif op in ("cancel", "ship", "reject") and open_orders:
                oid = rng.choice(open_orders)
                if op == "cancel":
                    ledger.cancel_order(oid)
                elif op == "ship":
                    ledger.ship_order(oid)
                else:
                    alloc = ledger.get_order(oid).allocations[-1]
                    ledger.reject_allocation(
                        oid, alloc.node_id, [alloc.line_id], rng.choice(["not_in_stock", "damaged"])
                    )
            elif op == "adjust":
                n, s = rng.choice(nodes_skus)
                kind = rng.choice(["count", "delta"])
                qty = rng.randint(0, 12) if kind == "count" else rng.randint(-5, 8)
                ledger.adjust([InventoryEvent(f"e{step}", clock(), n, s, kind, qty)])
        except (InsufficientStock, OrderStateError):
            pass
        except Exception as exc:  # AllocationNotFound for already-finished allocations is fine
            assert type(exc).__name__ == "AllocationNotFound", exc
        for row in ledger.availability():
            assert row.available >= 0 and row.reserved >= 0
    assert ledger.check().clean
