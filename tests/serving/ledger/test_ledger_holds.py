"""Screening holds in the ledger: a held order keeps its stock reserved but cannot ship until
released; cancelling or letting the hold expire frees the stock, each with its event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_testkit import Clock, level

from serving.ledger import Ledger, OrderStateError
from serving.ledger.records import Hold


def _held(ledger: Ledger, clock: Clock, order_id: str = "h1") -> None:
    ledger.reserve_order(
        order_id,
        [("l1", "dc1", "A", 2)],
        request_hash="h",
        plan={},
        hold=Hold(("order value 900.00 is over the 500.00 limit",), clock.now + timedelta(hours=2)),
        customer_id="c1",
        destination_key="US:10001",
    )


def test_held_order_reserves_but_does_not_ship_until_released(ledger: Ledger, clock: Clock) -> None:
    _held(ledger, clock)
    view = ledger.get_order("h1")
    assert view.status == "held" and view.hold_reasons == [
        "order value 900.00 is over the 500.00 limit"
    ]
    assert level(ledger, "dc1", "A").reserved == 2
    with pytest.raises(OrderStateError):
        ledger.ship_order("h1")
    with pytest.raises(OrderStateError):
        ledger.reject_allocation("h1", "dc1", ["l1"], "damaged")
    released = ledger.release_hold("h1")
    assert released.status == "placed" and released.hold_expires_at is None
    assert ledger.release_hold("h1").status == "placed"  # idempotent
    ledger.ship_order("h1")
    types = [e.type for e in ledger.events(order_id="h1")]
    assert types == ["order.placed", "order.held", "order.released", "shipment.created"]
    held = ledger.events(type_="order.held")[0].payload["data"]
    assert held["reasons"] == ["order value 900.00 is over the 500.00 limit"]


def test_cancel_frees_a_held_order(ledger: Ledger, clock: Clock) -> None:
    _held(ledger, clock)
    assert ledger.cancel_order("h1").status == "cancelled"
    assert level(ledger, "dc1", "A").reserved == 0
    with pytest.raises(OrderStateError):
        ledger.release_hold("h1")


def test_expired_hold_releases_stock_with_an_event(ledger: Ledger, clock: Clock) -> None:
    _held(ledger, clock, "h2")
    assert ledger.expire_holds() == []
    clock.advance(hours=2, seconds=1)
    assert ledger.expire_holds() == ["h2"]
    assert ledger.get_order("h2").status == "cancelled"
    assert level(ledger, "dc1", "A").reserved == 0
    last = ledger.events(order_id="h2")[-1]
    assert (last.type, last.payload["data"]["reason"]) == ("order.cancelled", "hold_expired")


def test_recent_orders_count_per_destination_and_customer(ledger: Ledger, clock: Clock) -> None:
    _held(ledger, clock, "h3")
    _held(ledger, clock, "h4")
    since = clock.now - timedelta(hours=1)
    assert ledger.recent_orders(customer_id="c1", destination_key="US:10001", since=since) == (2, 2)
    assert ledger.recent_orders(customer_id="c2", destination_key=None, since=since) == (0, 0)
    later = clock.now + timedelta(minutes=1)
    assert ledger.recent_orders(customer_id="c1", destination_key="US:10001", since=later) == (0, 0)
