"""Returns in the ledger: only shipped units can come back; resellable units re-enter the
receiving node's stock through the movement log, damaged ones do not."""

from __future__ import annotations

import pytest
from ledger_testkit import level

from serving.ledger import Ledger
from serving.ledger.errors import InvalidReturn, ReturnNotFound


def _shipped(ledger: Ledger) -> None:
    ledger.reserve_order(
        "r1", [("l1", "dc1", "A", 3), ("l2", "st2", "B", 1)], request_hash="h", plan={}
    )
    ledger.ship_order("r1", ["l1"])


def test_return_then_receive_restocks_only_resellable(ledger: Ledger) -> None:
    _shipped(ledger)
    before = level(ledger, "st1", "A")
    ret = ledger.create_return(
        "r1", node_id="st1", why="nearest", reason="too small", lines=[("l1", 2)]
    )
    assert (ret.status, ret.node_id, ret.lines[0].qty, ret.lines[0].sku) == ("open", "st1", 2, "A")
    got, replayed = ledger.receive_return(ret.return_id, [("l1", 1, "resellable")])
    assert got.status == "open" and got.lines[0].resellable == 1 and not replayed
    after = level(ledger, "st1", "A")
    assert after.on_hand == before.on_hand + 1 and after.available == before.available + 1
    got, _ = ledger.receive_return(ret.return_id, [("l1", 1, "damaged")])
    assert got.status == "received" and got.lines[0].damaged == 1
    assert level(ledger, "st1", "A").on_hand == before.on_hand + 1  # damaged: not restocked
    types = [e.type for e in ledger.events(order_id="r1")]
    assert types[-3:] == ["return.created", "return.received", "return.received"]
    first = ledger.events(type_="return.received")[0].payload["data"]
    assert first["restocked"] == 1 and first["lines"][0]["condition"] == "resellable"


def test_only_shipped_units_can_be_returned(ledger: Ledger) -> None:
    _shipped(ledger)
    with pytest.raises(InvalidReturn) as err:
        ledger.create_return("r1", node_id="dc1", why="x", reason=None, lines=[("l2", 1)])
    assert err.value.extra["field"] == "lines[0].line_id"  # reserved, not shipped
    with pytest.raises(InvalidReturn) as err:
        ledger.create_return("r1", node_id="dc1", why="x", reason=None, lines=[("l1", 4)])
    assert err.value.extra["field"] == "lines[0].qty"
    ledger.create_return("r1", node_id="dc1", why="x", reason=None, lines=[("l1", 3)])
    with pytest.raises(InvalidReturn):  # all three already on their way back
        ledger.create_return("r1", node_id="dc1", why="x", reason=None, lines=[("l1", 1)])
    assert ledger.events(type_="return.created")[-1].payload["data"]["lines"][0]["qty"] == 3


def test_receipt_cannot_exceed_the_return(ledger: Ledger) -> None:
    _shipped(ledger)
    ret = ledger.create_return("r1", node_id="dc1", why="x", reason=None, lines=[("l1", 1)])
    with pytest.raises(InvalidReturn) as err:
        ledger.receive_return(ret.return_id, [("l1", 2, "resellable")])
    assert err.value.extra["field"] == "lines[0].qty"
    with pytest.raises(InvalidReturn):
        ledger.receive_return(ret.return_id, [("l9", 1, "resellable")])
    with pytest.raises(ReturnNotFound):
        ledger.receive_return("R-nope", [("l1", 1, "resellable")])
    assert level(ledger, "dc1", "A").on_hand == 7  # 10 - 3 shipped, nothing restocked


def test_a_resent_receipt_id_is_recorded_once(ledger: Ledger) -> None:
    _shipped(ledger)
    before = level(ledger, "st1", "A").on_hand
    ret = ledger.create_return("r1", node_id="st1", why="x", reason=None, lines=[("l1", 3)])
    lines = [("l1", 1, "resellable")]
    first, replayed = ledger.receive_return(ret.return_id, lines, receipt_id="WMS-7")
    again, replayed_again = ledger.receive_return(ret.return_id, lines, receipt_id="WMS-7")
    assert (replayed, replayed_again) == (False, True)
    assert again == first and again.lines[0].resellable == 1
    assert level(ledger, "st1", "A").on_hand == before + 1  # restocked once, not twice
    assert len(ledger.events(type_="return.received")) == 1
    assert ledger.events(type_="return.received")[0].payload["data"]["receipt_id"] == "WMS-7"
    with pytest.raises(InvalidReturn) as err:  # same id, other content: refused, nothing moves
        ledger.receive_return(ret.return_id, [("l1", 2, "resellable")], receipt_id="WMS-7")
    assert err.value.extra["field"] == "receipt_id"
    # a new id is a new receipt; without an id every call is a new receipt (as before)
    ledger.receive_return(ret.return_id, lines, receipt_id="WMS-8")
    ledger.receive_return(ret.return_id, lines)
    assert level(ledger, "st1", "A").on_hand == before + 3
