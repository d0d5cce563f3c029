"""Transactional outbox: every order change writes its event in the same transaction, numbered
per order; a refused change writes none; the delivery queue leases, retries and dead-letters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from ledger_testkit import Clock

from serving.ledger import InsufficientStock, Ledger
from serving.ledger.outbox import OutboxConfig


@pytest.fixture
def evented(ledger: Ledger) -> Ledger:
    ledger.outbox = OutboxConfig(endpoints=("erp", "wms"), low_stock_threshold=2)
    return ledger


def _types(ledger: Ledger, order_id: str) -> list[tuple[int, str]]:
    return [(e.sequence, e.type) for e in ledger.events(order_id=order_id)]


def test_each_order_change_writes_one_numbered_event(evented: Ledger) -> None:
    evented.reserve_order(
        "o1", [("l1", "dc1", "A", 2), ("l2", "st2", "B", 1)], request_hash="h", plan={}
    )
    result = evented.reject_allocation("o1", "dc1", ["l1"], "damaged")
    evented.reallocate("o1", [("l1", "st1", "A", 2)])
    evented.ship_order("o1")
    assert _types(evented, "o1") == [
        (1, "order.placed"),
        (2, "allocation.rejected"),
        (3, "order.rerouted"),
        (4, "shipment.created"),
        (5, "shipment.created"),
    ]
    placed, rejected, rerouted, ship1, ship2 = evented.events(order_id="o1")
    assert placed.payload["data"]["allocations"] == [
        {"line_id": "l1", "node_id": "dc1", "sku": "A", "qty": 2},
        {"line_id": "l2", "node_id": "st2", "sku": "B", "qty": 1},
    ]
    assert rejected.payload["data"]["reason"] == "damaged"
    assert rejected.payload["data"]["rejections"] == result.rejections == 1
    assert rerouted.payload["data"]["allocations"][0]["node_id"] == "st1"
    assert {ship1.payload["data"]["node_id"], ship2.payload["data"]["node_id"]} == {"st1", "st2"}
    assert ship2.payload["data"]["status"] == "shipped"
    # every event is queued for every configured endpoint, with a unique id
    ids = [e.event_id for e in evented.events(order_id="o1")]
    assert len(set(ids)) == len(ids)
    for e in evented.events(order_id="o1"):
        assert e.payload["id"] == e.event_id and e.payload["sequence"] == e.sequence
        assert [(d.endpoint, d.status) for d in e.deliveries] == [
            ("erp", "pending"),
            ("wms", "pending"),
        ]


def test_cancel_writes_order_cancelled(evented: Ledger) -> None:
    evented.reserve_order("o2", [("l1", "dc1", "B", 1)], request_hash="h", plan={})
    evented.cancel_order("o2")
    evented.cancel_order("o2")  # idempotent: no second event
    assert _types(evented, "o2") == [(1, "order.placed"), (2, "order.cancelled")]
    released = evented.events(order_id="o2")[1].payload["data"]["released"]
    assert released == [{"line_id": "l1", "node_id": "dc1", "sku": "B", "qty": 1}]


def test_a_refused_order_writes_no_event(evented: Ledger) -> None:
    with pytest.raises(InsufficientStock):
        evented.reserve_order("o3", [("l1", "st1", "A", 99)], request_hash="h", plan={})
    assert evented.events(order_id="o3") == []
    assert evented.events() == []


def test_replay_writes_no_second_event(evented: Ledger) -> None:
    for _ in range(2):
        evented.reserve_order("o4", [("l1", "dc1", "A", 1)], request_hash="h", plan={})
    assert _types(evented, "o4") == [(1, "order.placed")]


def test_low_stock_fires_once_per_crossing(evented: Ledger) -> None:
    # st1/A has 3 on hand; threshold 2: reserving 2 crosses (3 → 1), reserving 1 more does not
    evented.reserve_order("o5", [("l1", "st1", "A", 2)], request_hash="h", plan={})
    evented.reserve_order("o6", [("l1", "st1", "A", 1)], request_hash="h", plan={})
    low = evented.events(type_="inventory.low")
    assert len(low) == 1
    assert low[0].subject == "stock:st1/A" and low[0].order_id is None
    assert low[0].payload["data"] == {
        "node_id": "st1",
        "sku": "A",
        "available": 1,
        "on_hand": 3,
        "reserved": 2,
        "threshold": 2,
    }
    evented.cancel_order("o5")  # back above the threshold …
    evented.reserve_order("o7", [("l1", "st1", "A", 2)], request_hash="h", plan={})
    assert [e.sequence for e in evented.events(type_="inventory.low")] == [1, 2]  # … and below


def test_queue_leases_retries_and_dead_letters(evented: Ledger, clock: Clock) -> None:
    evented.reserve_order("o8", [("l1", "dc1", "A", 1)], request_hash="h", plan={})
    lease = timedelta(seconds=30)
    due = evented.claim_deliveries(["erp"], lease=lease)
    assert [(d.endpoint, d.payload["type"]) for d in due] == [("erp", "order.placed")]
    assert evented.claim_deliveries(["erp"], lease=lease) == []  # leased: nobody else takes it
    clock.advance(seconds=31)  # a dispatcher that died mid-send: the lease runs out
    again = evented.claim_deliveries(["erp"], lease=lease)
    assert [d.event_id for d in again] == [due[0].event_id]
    evented.record_delivery(
        due[0].event_id, "erp", ok=False, next_attempt_at=clock.now + lease, http_status=500
    )
    evented.record_delivery(due[0].event_id, "erp", ok=False, next_attempt_at=None, error="down")
    (event,) = evented.events(order_id="o8")
    erp = event.deliveries[0]
    assert (erp.status, erp.attempts, erp.last_error) == ("dead", 2, "down")
    assert [e.event_id for e in evented.events(delivery_status="dead")] == [event.event_id]
    replayed = evented.redeliver(event.event_id, ["erp"])
    assert replayed is not None
    assert (replayed.deliveries[0].status, replayed.deliveries[0].attempts) == ("pending", 0)
    assert [d.event_id for d in evented.claim_deliveries(["erp"], lease=lease)] == [event.event_id]
    evented.record_delivery(event.event_id, "erp", ok=True, next_attempt_at=None, http_status=204)
    assert evented.get_event(event.event_id).deliveries[0].status == "delivered"  # type: ignore[union-attr]
    assert evented.redeliver("evt_missing", ["erp"]) is None


def test_shipment_and_delivery_events_carry_the_parcel(evented: Ledger, clock: Clock) -> None:
    from serving.ledger.records import DeliveryEvent

    evented.reserve_order("o9", [("l1", "dc1", "A", 1)], request_hash="h", plan={})
    evented.ship_order("o9", carrier="ups", tracking_number="1Z999")
    clock.advance(days=2)
    delivery = DeliveryEvent("car-1", clock.now, tracking_number="1Z999")
    evented.confirm_deliveries("o9", [delivery])
    evented.confirm_deliveries("o9", [delivery])  # a replayed carrier event: no second event
    _, shipped, delivered = evented.events(order_id="o9")
    assert shipped.type == "shipment.created"
    assert {
        k: shipped.payload["data"][k] for k in ("shipment_id", "carrier", "tracking_number")
    } == {
        "shipment_id": "o9-S1",
        "carrier": "ups",
        "tracking_number": "1Z999",
    }
    assert (delivered.type, delivered.sequence) == ("delivery.confirmed", 3)
    assert delivered.payload["data"]["shipment_id"] == "o9-S1"
    assert delivered.payload["data"]["delivered_at"] == clock.now.isoformat()
