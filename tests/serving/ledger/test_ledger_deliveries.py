"""Shipments keep carrier and tracking number; delivery confirmations are idempotent per event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_testkit import T0, Clock

from serving.ledger import (
    DeliveryConflict,
    DeliveryEvent,
    InvalidLedgerRequest,
    Ledger,
    OrderNotFound,
    ShipmentNotFound,
)


def _two_node_order(ledger: Ledger) -> None:
    ledger.reserve_order(
        "o1",
        [("l1", "dc1", "A", 2), ("l2", "st2", "B", 1)],
        request_hash="h-o1",
        plan={"v": 1},
    )


def test_ship_records_one_shipment_per_node_with_carrier_and_tracking(ledger: Ledger) -> None:
    _two_node_order(ledger)
    view = ledger.ship_order("o1", ["l1"], carrier="UPS", tracking_number="1Z1")
    (s1,) = view.shipments
    assert (s1.shipment_id, s1.node_id, s1.line_ids) == ("o1-S1", "dc1", ["l1"])
    assert (s1.carrier, s1.tracking_number, s1.shipped_at, s1.delivered_at) == (
        "UPS",
        "1Z1",
        T0,
        None,
    )
    later = T0 + timedelta(hours=1)
    view = ledger.ship_order("o1", carrier="DHL", shipped_at=later)
    assert [(s.shipment_id, s.node_id, s.carrier, s.shipped_at) for s in view.shipments] == [
        ("o1-S1", "dc1", "UPS", T0),
        ("o1-S2", "st2", "DHL", later),
    ]
    assert {a.line_id: a.shipment_id for a in view.allocations} == {"l1": "o1-S1", "l2": "o1-S2"}


def test_one_tracking_number_cannot_name_parcels_from_two_nodes(ledger: Ledger) -> None:
    _two_node_order(ledger)
    with pytest.raises(InvalidLedgerRequest) as err:
        ledger.ship_order("o1", tracking_number="1Z1")
    assert err.value.extra["field"] == "tracking_number"
    assert ledger.get_order("o1").status == "placed"  # nothing shipped


def test_delivery_is_applied_once_per_event_and_first_confirmation_wins(
    ledger: Ledger, clock: Clock
) -> None:
    _two_node_order(ledger)
    ledger.ship_order("o1", ["l1"], carrier="UPS", tracking_number="1Z1")
    ledger.ship_order("o1", ["l2"], carrier="DHL", tracking_number="JD2")
    clock.advance(days=2)
    at1, at2 = T0 + timedelta(days=1, hours=3), T0 + timedelta(days=2)
    first = ledger.confirm_deliveries(
        "o1",
        [
            DeliveryEvent("ev1", at1, tracking_number="1Z1", carrier="UPS"),
            DeliveryEvent("ev2", at2, shipment_id="o1-S2"),
        ],
    )
    assert [(r.event_id, r.shipment_id, r.outcome, r.delivered_at) for r in first] == [
        ("ev1", "o1-S1", "applied", at1),
        ("ev2", "o1-S2", "applied", at2),
    ]
    again = ledger.confirm_deliveries(
        "o1", [DeliveryEvent("ev1", at1, tracking_number="1Z1", carrier="UPS")]
    )
    assert [(r.outcome, r.delivered_at) for r in again] == [("duplicate", at1)]
    late_scan = ledger.confirm_deliveries(
        "o1", [DeliveryEvent("ev3", at1 + timedelta(hours=5), shipment_id="o1-S1")]
    )
    assert [(r.outcome, r.delivered_at) for r in late_scan] == [("already_delivered", at1)]
    view = ledger.get_order("o1")
    assert {s.shipment_id: s.delivered_at for s in view.shipments} == {"o1-S1": at1, "o1-S2": at2}


def test_single_shipment_needs_no_name_and_learns_carrier_from_the_event(ledger: Ledger) -> None:
    ledger.reserve_order("o2", [("l1", "dc1", "A", 1)], request_hash="h", plan={})
    ledger.ship_order("o2")
    at = T0 + timedelta(days=1)
    (r,) = ledger.confirm_deliveries(
        "o2", [DeliveryEvent("e", at, carrier="Correios", tracking_number="BR9")]
    )
    assert r.outcome == "applied"
    (s,) = ledger.get_order("o2").shipments
    assert (s.carrier, s.tracking_number, s.delivered_at) == ("Correios", "BR9", at)


def test_bad_deliveries_name_the_field_and_change_nothing(ledger: Ledger) -> None:
    _two_node_order(ledger)
    ledger.ship_order("o1", ["l1"], carrier="UPS", tracking_number="1Z1")
    ledger.ship_order("o1", ["l2"])
    at = T0 + timedelta(days=1)
    cases = [
        (DeliveryEvent("x", at), ShipmentNotFound, "deliveries[1].shipment_id"),
        (DeliveryEvent("x", at, shipment_id="nope"), ShipmentNotFound, "deliveries[1].shipment_id"),
        (
            DeliveryEvent("x", at, tracking_number="other"),
            ShipmentNotFound,
            "deliveries[1].tracking_number",
        ),
        (
            DeliveryEvent("x", at, shipment_id="o1-S1", carrier="DHL"),
            DeliveryConflict,
            "deliveries[1].carrier",
        ),
        (
            DeliveryEvent("x", T0 - timedelta(hours=1), shipment_id="o1-S1"),
            DeliveryConflict,
            "deliveries[1].delivered_at",
        ),
    ]
    good = DeliveryEvent("ok", at, shipment_id="o1-S2")
    for bad, error, field in cases:
        with pytest.raises(error) as err:
            ledger.confirm_deliveries("o1", [good, bad])
        assert err.value.extra["field"] == field
    assert all(s.delivered_at is None for s in ledger.get_order("o1").shipments)
    ledger.confirm_deliveries("o1", [good])
    with pytest.raises(DeliveryConflict) as err:
        ledger.confirm_deliveries("o1", [DeliveryEvent("ok", at, shipment_id="o1-S1")])
    assert err.value.extra["field"] == "deliveries[0].event_id"
    with pytest.raises(OrderNotFound):
        ledger.confirm_deliveries("missing", [good])
    with pytest.raises(InvalidLedgerRequest):
        ledger.confirm_deliveries("o1", [])
