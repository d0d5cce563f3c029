"""Behaviour of placing, cancelling, shipping, rejecting and rerouting orders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ledger_testkit import Clock, level
from sqlalchemy import Engine, func, select

from serving.ledger import (
    AllocationNotFound,
    AllocationRequest,
    InsufficientStock,
    InvalidLedgerRequest,
    Ledger,
    OrderExists,
    OrderNotFound,
    OrderStateError,
    Reservation,
    Shortage,
    stock_ops,
)
from serving.ledger.outbox import OutboxConfig
from serving.ledger.tables import movements, orders


def _place(ledger: Ledger, order_id: str, *lines: tuple[str, str, str, int]) -> Reservation:
    return ledger.reserve_order(order_id, list(lines), request_hash=f"h-{order_id}", plan={"v": 1})


def test_reserve_moves_available_to_reserved(ledger: Ledger) -> None:
    res = _place(ledger, "o1", ("l1", "dc1", "A", 4), ("l2", "st2", "B", 2))
    assert res.status == "placed" and not res.replayed
    assert [(a.line_id, a.node_id, a.qty, a.status) for a in res.allocations] == [
        ("l1", "dc1", 4, "reserved"),
        ("l2", "st2", 2, "reserved"),
    ]
    a = level(ledger, "dc1", "A")
    assert (a.on_hand, a.reserved, a.available) == (10, 4, 6)
    b = level(ledger, "st2", "B")
    assert (b.on_hand, b.reserved, b.available) == (7, 2, 5)
    assert ledger.get_order("o1").plan == {"v": 1}


def test_lines_for_the_same_row_are_checked_together(ledger: Ledger) -> None:
    with pytest.raises(InsufficientStock) as err:
        _place(ledger, "o1", ("l1", "st1", "A", 2), ("l2", "st1", "A", 2))
    assert err.value.missing == [Shortage("st1", "A", 4, 3)]


def test_shortage_names_every_line_and_reserves_nothing(ledger: Ledger, engine: Engine) -> None:
    with pytest.raises(InsufficientStock) as err:
        _place(
            ledger,
            "o1",
            ("l1", "dc1", "A", 2),
            ("l2", "dc1", "B", 6),
            ("l3", "st1", "B", 1),
        )
    assert err.value.missing == [Shortage("dc1", "B", 6, 5), Shortage("st1", "B", 1, 0)]
    assert level(ledger, "dc1", "A").reserved == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 0
        kinds = set(conn.execute(select(movements.c.kind)).scalars())
    assert kinds == {"count"}


def test_failure_after_reserving_rolls_everything_back(ledger: Ledger) -> None:
    def explode(_: Reservation) -> dict[str, Any]:
        raise RuntimeError("response could not be built")

    with pytest.raises(RuntimeError):
        ledger.reserve_order(
            "o1",
            [("l1", "dc1", "A", 3), ("l2", "st2", "B", 3)],
            idempotency_key="k1",
            request_hash="h",
            plan={},
            response_builder=explode,
        )
    assert level(ledger, "dc1", "A").reserved == 0
    assert level(ledger, "st2", "B").reserved == 0
    with pytest.raises(OrderNotFound):
        ledger.get_order("o1")
    assert ledger.begin_idempotent("k1", "h").state == "claimed"
    ledger.release_idempotent("k1", "h")


def test_crash_between_two_row_updates_leaves_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after a stock row was written (SQLite: between the two rows'
    updates; PostgreSQL: after the one function call that writes both, where low-stock
    events keep the commit apart from it): nothing stays. (Without low-stock events the
    commit travels with the PostgreSQL call: no client step between them to fail, and
    ``test_ledger_stock_step`` refuses inside the call after a written row.)"""
    ledger = Ledger(ledger.engine, clock=ledger.clock, events=OutboxConfig(low_stock_threshold=1))
    real_check = stock_ops._low_stock
    calls = {"n": 0}

    def flaky_check(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("connection dropped mid-order")
        real_check(*args, **kwargs)

    monkeypatch.setattr(stock_ops, "_low_stock", flaky_check)
    with pytest.raises(ConnectionError):
        _place(ledger, "o1", ("l1", "dc1", "A", 3), ("l2", "st2", "B", 3))
    monkeypatch.undo()
    assert calls["n"] == 2
    assert level(ledger, "dc1", "A").reserved == 0
    with pytest.raises(OrderNotFound):
        ledger.get_order("o1")


def test_order_id_is_idempotent_and_guarded(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 2))
    again = _place(ledger, "o1", ("l1", "dc1", "A", 2))
    assert again.replayed
    assert level(ledger, "dc1", "A").reserved == 2
    with pytest.raises(OrderExists):
        ledger.reserve_order("o1", [("l1", "dc1", "A", 1)], request_hash="other", plan={})


@pytest.mark.parametrize(
    "lines",
    [
        [],
        [("l1", "dc1", "A", 0)],
        [("l1", "dc1", "A", -2)],
        [("l1", "dc1", "A", 1.5)],
        [("", "dc1", "A", 1)],
    ],
)
def test_invalid_orders_are_refused_before_touching_stock(ledger: Ledger, lines: list[Any]) -> None:
    with pytest.raises(InvalidLedgerRequest):
        ledger.reserve_order("bad", lines, request_hash="h", plan={})
    assert level(ledger, "dc1", "A").reserved == 0


def test_cancel_releases_and_is_idempotent(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 4), ("l2", "dc1", "B", 1))
    view = ledger.cancel_order("o1")
    assert view.status == "cancelled"
    assert {a.status for a in view.allocations} == {"released"}
    assert level(ledger, "dc1", "A").available == 10
    assert ledger.cancel_order("o1").status == "cancelled"
    with pytest.raises(OrderNotFound):
        ledger.cancel_order("nope")


def test_ship_deducts_on_hand_and_tracks_shipped(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 4), ("l2", "dc1", "B", 1))
    part = ledger.ship_order("o1", ["l1"])
    assert part.status == "partially_shipped"
    a = level(ledger, "dc1", "A")
    assert (a.on_hand, a.reserved, a.available, a.shipped) == (6, 0, 6, 4)
    assert ledger.ship_order("o1").status == "shipped"
    assert level(ledger, "dc1", "B").on_hand == 4
    with pytest.raises(OrderStateError):
        ledger.cancel_order("o1")


def test_cancel_after_partial_ship_keeps_shipped_lines(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 4), ("l2", "dc1", "B", 1))
    ledger.ship_order("o1", ["l1"])
    view = ledger.cancel_order("o1")
    assert view.status == "shipped"
    assert {a.line_id: a.status for a in view.allocations} == {"l1": "shipped", "l2": "released"}
    assert level(ledger, "dc1", "B").reserved == 0
    with pytest.raises(OrderStateError):
        _ = ledger.reallocate("o1", [("l2", "st2", "B", 1)])


def test_ship_of_cancelled_order_is_refused(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 1))
    ledger.cancel_order("o1")
    with pytest.raises(OrderStateError):
        ledger.ship_order("o1")


def test_not_in_stock_rejection_zeroes_available_but_keeps_other_reservations(
    ledger: Ledger,
) -> None:
    _place(ledger, "other", ("l1", "dc1", "A", 3))
    _place(ledger, "o1", ("l1", "dc1", "A", 2), ("l2", "dc1", "B", 1))
    result = ledger.reject_allocation("o1", "dc1", ["l1"], "not_in_stock")
    assert [(r.line_id, r.sku, r.qty, r.rejected_node_id) for r in result.reroute] == [
        ("l1", "A", 2, "dc1")
    ]
    assert result.order_status == "placed" and result.rejections == 1
    a = level(ledger, "dc1", "A")
    assert (a.on_hand, a.reserved, a.available) == (3, 3, 0)
    assert level(ledger, "dc1", "B").reserved == 1
    # reroute primitive: the lost line gets a new node, all-or-nothing
    with pytest.raises(InsufficientStock):
        ledger.reallocate("o1", [AllocationRequest("l1", "st1", "A", 5)])
    moved = ledger.reallocate("o1", [AllocationRequest("l1", "st1", "A", 2)])
    assert [(x.line_id, x.node_id, x.status) for x in moved.allocations] == [
        ("l1", "dc1", "rejected"),
        ("l2", "dc1", "reserved"),
        ("l1", "st1", "reserved"),
    ]
    assert level(ledger, "st1", "A").available == 1
    assert ledger.ship_order("other").status == "shipped"


def test_damaged_rejection_lowers_on_hand_by_the_quantity(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 2))
    ledger.reject_allocation("o1", "dc1", ["l1"], "damaged")
    a = level(ledger, "dc1", "A")
    assert (a.on_hand, a.reserved, a.available) == (8, 0, 8)


def test_capacity_rejection_closes_node_until_local_midnight(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "st1", "A", 1))
    result = ledger.reject_allocation("o1", "st1", ["l1"], "capacity")
    # clock is 2025-03-10 12:00 UTC = 09:00 in São Paulo (UTC-3) -> closed until 03:00 UTC next day
    assert result.node_closed_until == datetime(2025, 3, 11, 3, 0, tzinfo=UTC)
    node = {n.node_id: n for n in ledger.nodes()}["st1"]
    assert node.closed_until == datetime(2025, 3, 11, 3, 0, tzinfo=UTC)
    assert level(ledger, "st1", "A").on_hand == 3


def test_repeated_rejections_turn_the_order_into_an_exception(ledger: Ledger, clock: Clock) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 1))
    for node in ("dc1", "st1"):
        ledger.reject_allocation("o1", node, ["l1"], "damaged")
        ledger.reallocate("o1", [("l1", "st1" if node == "dc1" else "dc1", "A", 1)])
        clock.advance(minutes=1)
    last = ledger.reject_allocation("o1", "dc1", ["l1"], "damaged")
    assert last.rejections == 3 and last.order_status == "exception"
    with pytest.raises(OrderStateError):
        ledger.reallocate("o1", [("l1", "st1", "A", 1)])


def test_rejecting_an_unknown_allocation_is_a_typed_error(ledger: Ledger) -> None:
    _place(ledger, "o1", ("l1", "dc1", "A", 1))
    with pytest.raises(AllocationNotFound):
        ledger.reject_allocation("o1", "st1", ["l1"], "not_in_stock")
    with pytest.raises(InvalidLedgerRequest):
        ledger.reject_allocation("o1", "dc1", ["l1"], "bored")  # type: ignore[arg-type]
    ledger.reject_allocation("o1", "dc1", ["l1"], "not_in_stock")
    with pytest.raises(AllocationNotFound):  # a second report of the same rejection
        ledger.reject_allocation("o1", "dc1", ["l1"], "not_in_stock")
