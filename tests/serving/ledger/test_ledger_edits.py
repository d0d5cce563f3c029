"""Edits before shipment in the ledger: cancelling units of a line and swapping a whole plan,
each one transaction with its event; shipped units and stale swaps are refused."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_testkit import level

from serving.ledger import InsufficientStock, Ledger
from serving.ledger.errors import CancelQtyTooLarge, LineAlreadyShipped, OrderChanged
from serving.lifecycle import shrink_request

PLAN: dict[str, Any] = {
    "request": {
        "lines": [{"line_id": "l1", "sku": "A", "qty": 5}, {"line_id": "l2", "sku": "B", "qty": 1}]
    }
}


def _place(ledger: Ledger, order_id: str = "o1") -> None:
    ledger.reserve_order(
        order_id,
        [("l1", "dc1", "A", 3), ("l1", "st1", "A", 2), ("l2", "dc1", "B", 1)],
        request_hash="h",
        plan=PLAN,
    )


def test_cancel_units_newest_first_and_shrink_the_request(ledger: Ledger) -> None:
    _place(ledger)
    view = ledger.cancel_line("o1", "l1", 3, edit_plan=shrink_request)
    live = [(a.node_id, a.qty) for a in view.allocations if a.status == "reserved"]
    assert live == [("dc1", 2), ("dc1", 1)]
    assert (level(ledger, "st1", "A").reserved, level(ledger, "dc1", "A").reserved) == (0, 2)
    assert view.plan["request"]["lines"][0]["qty"] == 2
    (event,) = ledger.events(type_="order.line_cancelled")
    assert event.payload["data"]["qty"] == 3 and event.payload["data"]["open_qty"] == 2
    with pytest.raises(CancelQtyTooLarge):
        ledger.cancel_line("o1", "l1", 3, edit_plan=shrink_request)


def test_cancelling_every_line_cancels_the_order(ledger: Ledger) -> None:
    _place(ledger)
    ledger.cancel_line("o1", "l1", None, edit_plan=shrink_request)
    view = ledger.cancel_line("o1", "l2", None, edit_plan=shrink_request)
    assert view.status == "cancelled"
    assert level(ledger, "dc1", "B").reserved == 0


def test_shipped_line_is_refused(ledger: Ledger) -> None:
    _place(ledger)
    ledger.ship_order("o1", ["l2"])
    with pytest.raises(LineAlreadyShipped) as err:
        ledger.cancel_line("o1", "l2", 1, edit_plan=shrink_request)
    assert err.value.status == 409 and err.value.extra["field"] == "line_id"


def test_replan_swaps_all_or_nothing(ledger: Ledger) -> None:
    _place(ledger)
    reserved = frozenset(
        a.allocation_id for a in ledger.get_order("o1").allocations if a.status == "reserved"
    )
    with pytest.raises(InsufficientStock):
        ledger.replan("o1", [("l1", "st2", "B", 50)], why="destination_changed")
    assert level(ledger, "dc1", "A").reserved == 3  # nothing moved
    with pytest.raises(OrderChanged):
        ledger.replan(
            "o1", [("l1", "dc1", "A", 5)], why="x", expect_reserved=frozenset(sorted(reserved)[:1])
        )
    ledger.replan(
        "o1",
        [("l1", "dc1", "A", 5), ("l2", "st2", "B", 1)],
        why="destination_changed",
        plan={"request": {"moved": True}},
        expect_reserved=frozenset(
            a.allocation_id for a in ledger.get_order("o1").allocations if a.status == "reserved"
        ),
    )
    assert (level(ledger, "dc1", "A").reserved, level(ledger, "st1", "A").reserved) == (5, 0)
    assert (level(ledger, "dc1", "B").reserved, level(ledger, "st2", "B").reserved) == (0, 1)
    assert ledger.get_order("o1").plan == {"request": {"moved": True}}
    rerouted = ledger.events(type_="order.rerouted")[-1]
    assert rerouted.payload["data"]["why"] == "destination_changed"
    assert len(rerouted.payload["data"]["released"]) == 3
