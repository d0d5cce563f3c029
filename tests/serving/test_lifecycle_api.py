"""The order life over HTTP on SQLite and PostgreSQL: events read and replayed to a real
receiver, bad input named, scopes enforced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from routing import policy_from_dict
from serving.app import create_app
from serving.demo import DemoReport
from serving.ledger.tables import event_deliveries
from serving.settings import Settings, WebhookEndpoint
from tests.serving.test_orders_api import _available, _dc_ids, _fresh_sku, _order, _set_stock
from tests.serving.webhook_receiver import Receiver
from tests.support.services import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("orders")]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def evented(
    request: pytest.FixtureRequest,
    demo_home: tuple[Settings, DemoReport],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Any, Receiver]]:
    settings, _ = demo_home
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('ev') / 'ledger.db'}"
        else:
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{stack.enter_context(postgres_database('rc_ev'))}"
        receiver = stack.enter_context(Receiver())
        app = create_app(
            settings.model_copy(
                update={
                    "database_url": url,
                    "webhooks": [WebhookEndpoint(**receiver.endpoint("erp"))],
                }
            ),
            background=False,  # the tests run dispatch passes themselves
        )
        with TestClient(app) as client:
            runtime = app.state.runtime
            client.headers["Authorization"] = "Bearer " + runtime.keys.create(
                {"route", "orders", "inventory", "admin"}, "tests"
            )
            yield client, runtime, receiver


def test_order_events_are_listed_and_delivered(evented: tuple[TestClient, Any, Receiver]) -> None:
    client, runtime, receiver = evented
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 5})
    body = _order(sku, 2)
    assert client.post("/v1/orders", json=body).status_code == 201
    assert client.post(f"/v1/orders/{body['order_id']}/cancel").status_code == 200
    listed = client.get("/v1/events", params={"order_id": body["order_id"]}).json()["events"]
    assert [(e["type"], e["sequence"]) for e in listed] == [
        ("order.placed", 1),
        ("order.cancelled", 2),
    ]
    assert listed[0]["payload"]["data"]["allocations"][0]["sku"] == sku
    assert [d["status"] for d in listed[0]["deliveries"]] == ["pending"]
    runtime.dispatcher.run_once()
    got = receiver.wait_for({e["id"] for e in listed}, timeout=10)
    assert all(got[e["id"]].valid for e in listed)
    assert got[listed[0]["id"]].payload == listed[0]["payload"]
    delivered = client.get(
        "/v1/events", params={"order_id": body["order_id"], "status": "delivered"}
    ).json()["events"]
    assert len(delivered) == 2

    # replay: the receiver gets the same id again (it deduplicates by webhook-id)
    before = len(receiver.received)
    r = client.post(f"/v1/events/{listed[0]['id']}/redeliver")
    assert r.status_code == 200 and r.json()["deliveries"][0]["status"] == "pending"
    runtime.dispatcher.run_once()
    assert len(receiver.received) == before + 1
    assert receiver.received[-1].webhook_id == listed[0]["id"]
    assert client.get(f"/v1/events/{listed[0]['id']}").json()["deliveries"][0]["attempts"] == 1


def test_bad_input_is_named(evented: tuple[TestClient, Any, Receiver]) -> None:
    client, _, _ = evented
    r = client.get("/v1/events", params={"type": "order.exploded"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.type"
    r = client.get("/v1/events", params={"limit": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.limit"
    r = client.post("/v1/events/evt_nope/redeliver", json={"endpoints": ["crm"]})
    assert r.status_code == 422 and r.json()["field"] == "endpoints"
    r = client.post("/v1/events/evt_nope/redeliver")
    assert r.status_code == 404 and r.json()["type"].endswith("event-not-found")
    assert client.get("/v1/events/evt_nope").status_code == 404


def test_scopes(evented: tuple[TestClient, Any, Receiver]) -> None:
    client, runtime, _ = evented
    reader = runtime.keys.create({"orders"}, "reader")
    other = runtime.keys.create({"route"}, "router")
    auth = {"Authorization": f"Bearer {reader}"}
    assert client.get("/v1/events", headers=auth).status_code == 200
    assert client.post("/v1/events/evt_x/redeliver", headers=auth).status_code == 403
    assert client.get("/v1/events", headers={"Authorization": f"Bearer {other}"}).status_code == 403
    assert client.get("/v1/events", headers={"Authorization": "Bearer nope"}).status_code == 401


# -- channels and per-order preferences ---------------------------------------------------


def test_channel_and_preferences_are_validated(evented: tuple[TestClient, Any, Receiver]) -> None:
    client, runtime, _ = evented
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 5})
    cases = [
        ({"channel": "fax"}, "channel", "unknown-channel"),
        ({"pickup_node_id": "NOPE"}, "pickup_node_id", "unknown-pickup-node"),
        (
            {"ship_complete": True, "allow_partial": True},
            "ship_complete",
            "conflicting-preferences",
        ),
    ]
    for extra, field, kind in cases:
        r = client.post("/v1/orders", json=_order(sku, 1, **extra))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field and r.json()["type"].endswith(kind)
    r = client.post("/v1/orders", json=_order(sku, 1, max_shipments=0))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "max_shipments"
    assert _available(client, sku) == (5, 0)  # nothing reserved by any refusal
    ok = client.post("/v1/orders", json=_order(sku, 1, channel="marketplace"))
    assert ok.status_code == 201


def test_ship_complete_is_one_parcel_or_none(evented: tuple[TestClient, Any, Receiver]) -> None:
    client, runtime, _ = evented
    sku = _fresh_sku(client, runtime)
    dc = _dc_ids(runtime)
    _set_stock(client, sku, {dc[0]: 2, dc[1]: 2})
    r = client.post("/v1/orders", json=_order(sku, 3, ship_complete=True))
    assert r.status_code == 409 and r.json()["type"].endswith("unfillable")
    assert _available(client, sku) == (4, 0)
    split = client.post("/v1/orders", json=_order(sku, 3))
    assert split.status_code == 201 and split.json()["decision"]["shipments"] == 2
    client.post(f"/v1/orders/{split.json()['order_id']}/cancel").raise_for_status()
    one = client.post("/v1/orders", json=_order(sku, 2, ship_complete=True))
    assert one.status_code == 201
    decision = one.json()["decision"]
    assert decision["shipments"] == 1
    assert "ship complete" in decision["explanation"]["summary"]


def test_max_shipments_holds_on_reroute(evented: tuple[TestClient, Any, Receiver]) -> None:
    """One parcel allowed: a rejection of one line moves the whole order to another node."""
    client, runtime, _ = evented
    a, b = _fresh_sku(client, runtime), _fresh_sku(client, runtime)
    dc = _dc_ids(runtime)[:2]
    for sku in (a, b):
        _set_stock(client, sku, {dc[0]: 3, dc[1]: 3})
    body = _order(a, 1, max_shipments=1)
    body["lines"].append({"line_id": "2", "sku": b, "qty": 1})
    placed = client.post("/v1/orders", json=body).json()
    (first,) = {x["node_id"] for x in placed["allocations"]}
    r = client.post(
        f"/v1/orders/{body['order_id']}/rejections",
        json={"node_id": first, "line_ids": ["1"], "reason": "damaged"},
    )
    assert r.status_code == 200 and r.json()["rerouted"] is True, r.text
    order = client.get(f"/v1/orders/{body['order_id']}").json()
    live = [x for x in order["allocations"] if x["status"] == "reserved"]
    assert {x["line_id"] for x in live} == {"1", "2"}
    assert {x["node_id"] for x in live} == set(dc) - {first}  # both lines, one other node
    assert _available(client, b)[1] == 1  # line 2's first reservation was released, not doubled
    types = [
        e["type"]
        for e in client.get("/v1/events", params={"order_id": body["order_id"]}).json()["events"]
    ]
    assert types == ["order.placed", "allocation.rejected", "order.rerouted"]


# -- edits, tracking and the whole life ------------------------------------------------------


def test_edits_refuse_bad_input_and_shipped_lines(
    evented: tuple[TestClient, Any, Receiver],
) -> None:
    client, runtime, _ = evented
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 6})
    body = _order(sku, 3)
    oid = body["order_id"]
    client.post("/v1/orders", json=body).raise_for_status()
    r = client.post(f"/v1/orders/{oid}/lines/1/cancel", json={"qty": 0})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "qty"
    r = client.post(f"/v1/orders/{oid}/lines/1/cancel", json={"qty": 9})
    assert r.status_code == 422 and r.json()["field"] == "qty"
    r = client.post(f"/v1/orders/{oid}/lines/nope/cancel")
    assert r.status_code == 404
    r = client.post(f"/v1/orders/{oid}/destination", json={"destination": {"country": "US"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "destination"
    assert _available(client, sku) == (3, 3)
    client.post(f"/v1/orders/{oid}/shipments", json={}).raise_for_status()
    r = client.post(f"/v1/orders/{oid}/lines/1/cancel")
    assert r.status_code == 409  # the whole order shipped
    r = client.post(
        f"/v1/orders/{oid}/destination",
        json={"destination": {"country": "US", "postal_code": "94105"}},
    )
    assert r.status_code == 409
    reader = runtime.keys.create({"route"}, "no-orders")
    r = client.post(
        f"/v1/orders/{oid}/lines/1/cancel", headers={"Authorization": f"Bearer {reader}"}
    )
    assert r.status_code == 403
    r = client.get(f"/v1/orders/{oid}/tracking", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    assert client.get("/v1/orders/nope/tracking").status_code == 404


def _invariants(runtime: Any) -> None:
    assert runtime.ledger.invariant_violations() == []


def test_whole_life_of_an_order(evented: tuple[TestClient, Any, Receiver]) -> None:
    """held → released → line cancelled → address changed → a node rejects → rerouted →
    shipped → delivered: every event reaches the receiver once after dedupe, in sequence,
    signed; stock, reserved and the movement log agree after every step."""
    client, runtime, receiver = evented
    a, b = _fresh_sku(client, runtime), _fresh_sku(client, runtime)
    dc = _dc_ids(runtime)[:3]
    _set_stock(client, a, {n: 2 for n in dc})
    _set_stock(client, b, {n: 2 for n in dc})
    body = _order(a, 3)
    body["lines"].append({"line_id": "2", "sku": b, "qty": 1})
    oid = body["order_id"]
    live_policy = runtime.policies.policy
    runtime.policies.policy = policy_from_dict({"screening": {"high_risk_skus": [a]}})
    try:
        placed = client.post("/v1/orders", json=body)
    finally:
        runtime.policies.policy = live_policy
    assert placed.status_code == 201 and placed.json()["status"] == "held", placed.text
    assert placed.json()["hold"]["reasons"] == [f"high-risk SKU(s) {a}"]
    assert _available(client, a)[1] == 3  # held: reserved, not released
    _invariants(runtime)
    assert client.post(f"/v1/orders/{oid}/shipments", json={}).status_code == 409
    released = client.post(f"/v1/orders/{oid}/release")
    assert released.status_code == 200 and released.json()["status"] == "placed"
    assert released.json()["hold"]["released"] is True
    _invariants(runtime)

    cancelled = client.post(f"/v1/orders/{oid}/lines/1/cancel", json={"qty": 1})
    assert cancelled.status_code == 200, cancelled.text
    assert sum(x["qty"] for x in cancelled.json()["allocations"] if x["status"] == "reserved") == 3
    assert _available(client, a)[1] == 2
    _invariants(runtime)

    moved = client.post(
        f"/v1/orders/{oid}/destination",
        json={"destination": {"country": "US", "postal_code": "94105"}},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["decision"]["order_id"] == oid
    stored = client.get(f"/v1/orders/{oid}").json()
    assert _available(client, a)[1] == 2 and _available(client, b)[1] == 1  # swapped, not doubled
    _invariants(runtime)

    live = [x for x in stored["allocations"] if x["status"] == "reserved"]
    line1 = next(x for x in live if x["line_id"] == "1")
    rejected = client.post(
        f"/v1/orders/{oid}/rejections",
        json={"node_id": line1["node_id"], "line_ids": ["1"], "reason": "damaged"},
    )
    assert rejected.status_code == 200 and rejected.json()["rerouted"] is True, rejected.text
    _invariants(runtime)

    live = [
        x
        for x in client.get(f"/v1/orders/{oid}").json()["allocations"]
        if x["status"] == "reserved"
    ]
    by_node: dict[str, list[str]] = {}
    for x in live:
        by_node.setdefault(x["node_id"], []).append(x["line_id"])
    for i, (_, lines) in enumerate(sorted(by_node.items())):
        r = client.post(
            f"/v1/orders/{oid}/shipments",
            json={"line_ids": lines, "carrier": "UPS", "tracking_number": f"1Z{oid}{i}"},
        )
        assert r.status_code == 200, r.text
        _invariants(runtime)
    order = client.get(f"/v1/orders/{oid}").json()
    assert order["status"] == "shipped"
    for s in order["shipments"]:
        r = client.post(
            f"/v1/orders/{oid}/deliveries",
            json={
                "deliveries": [
                    {
                        "event_id": f"car-{s['shipment_id']}",
                        "delivered_at": s["shipped_at"],
                        "shipment_id": s["shipment_id"],
                    }
                ]
            },
        )
        assert r.status_code == 200, r.text
    _invariants(runtime)

    returned = client.post(
        f"/v1/orders/{oid}/returns", json={"lines": [{"line_id": "2", "qty": 1}], "reason": "gift"}
    )
    assert returned.status_code == 201, returned.text
    ret = returned.json()
    assert ret["node_id"] in {n.node_id for n in runtime.nodes} and ret["why"]
    stock_before = {n["node_id"]: n for n in client.get(f"/v1/inventory/{b}").json()["nodes"]}.get(
        ret["node_id"], {"on_hand": 0}
    )["on_hand"]
    receipt = {
        "receipt_id": f"rcv-{ret['return_id']}",
        "lines": [{"line_id": "2", "qty": 1, "condition": "resellable"}],
    }
    received = client.post(f"/v1/returns/{ret['return_id']}/receipts", json=receipt)
    assert received.status_code == 200 and received.json()["status"] == "received", received.text
    resent = client.post(f"/v1/returns/{ret['return_id']}/receipts", json=receipt)
    assert resent.status_code == 200 and resent.headers["Idempotent-Replayed"] == "true"
    assert resent.json() == received.json()
    stock_after = {n["node_id"]: n for n in client.get(f"/v1/inventory/{b}").json()["nodes"]}[
        ret["node_id"]
    ]["on_hand"]
    assert stock_after == stock_before + 1  # restocked at the node routecast chose
    _invariants(runtime)

    track = client.get(f"/v1/orders/{oid}/tracking").json()
    assert {s["tracking_number"] for s in track["shipments"]} == {
        f"1Z{oid}{i}" for i in range(len(by_node))
    }
    assert all(s["status"] == "delivered" and s["carrier"] == "UPS" for s in track["shipments"])
    statuses = [t["status"] for t in track["timeline"]]
    assert statuses[:6] == ["placed", "held", "released", "line_cancelled", "rerouted", "rejected"]
    assert statuses[6] == "rerouted" and statuses[-3] == "delivered"
    assert statuses[-2:] == ["return_requested", "returned"]
    assert track["not_yet_shipped"] == []

    events = client.get("/v1/events", params={"order_id": oid}).json()["events"]
    ids = {e["id"] for e in events}
    receiver.fail_next = 2  # two refusals on the way: retried, never lost
    for _ in range(20):
        runtime.dispatcher.run_once()
        if ids <= set(receiver.unique()):
            break
        # back-off: make the retries due now instead of sleeping
        with runtime.engine.begin() as conn:
            conn.execute(
                update(event_deliveries)
                .where(event_deliveries.c.status == "pending")
                .values(next_attempt_at=datetime.now(UTC))
            )
    client.post(f"/v1/events/{events[0]['id']}/redeliver").raise_for_status()
    runtime.dispatcher.run_once()  # a duplicate on purpose
    got = [r for r in receiver.received if r.payload.get("subject") == oid]
    assert len(got) > len(ids)  # duplicates arrived …
    unique = {r.webhook_id: r for r in got}  # … and dedupe by id leaves each event once
    assert set(unique) == ids
    assert all(r.valid for r in unique.values())
    ordered = sorted(unique.values(), key=lambda r: r.payload["sequence"])
    assert [r.payload["sequence"] for r in ordered] == list(range(1, len(ids) + 1))
    assert [r.payload["type"] for r in ordered][:7] == [
        "order.placed",
        "order.held",
        "order.released",
        "order.line_cancelled",
        "order.rerouted",
        "allocation.rejected",
        "order.rerouted",
    ]
    assert [r.payload["type"] for r in ordered][-3:] == [
        "delivery.confirmed",
        "return.created",
        "return.received",
    ]


def test_hold_release_and_cancel_over_http(evented: tuple[TestClient, Any, Receiver]) -> None:
    client, runtime, _ = evented
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 4})
    live_policy = runtime.policies.policy
    runtime.policies.policy = policy_from_dict(
        {"screening": {"hold_on_country_mismatch": True, "hold_hours": 1}}
    )
    try:
        held = client.post("/v1/orders", json=_order(sku, 2, billing_country="BR"))
        clean = client.post("/v1/orders", json=_order(sku, 1, billing_country="US"))
    finally:
        runtime.policies.policy = live_policy
    assert held.json()["status"] == "held" and clean.json()["status"] == "placed"
    assert held.json()["hold"]["reasons"] == ["billing country BR differs from shipping country US"]
    oid = held.json()["order_id"]
    got = client.get(f"/v1/orders/{oid}").json()
    assert got["hold"]["reasons"] == held.json()["hold"]["reasons"] and not got["hold"]["released"]
    assert _available(client, sku) == (1, 3)
    reader = runtime.keys.create({"route"}, "no-orders")
    r = client.post(f"/v1/orders/{oid}/release", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403
    assert client.post("/v1/orders/nope/release").status_code == 404
    assert client.post(f"/v1/orders/{oid}/cancel").json()["status"] == "cancelled"
    assert _available(client, sku) == (3, 1)
    r = client.post(f"/v1/orders/{oid}/release")
    assert r.status_code == 409 and r.json()["type"].endswith("order-state")
    types = [e["type"] for e in client.get("/v1/events", params={"order_id": oid}).json()["events"]]
    assert types == ["order.placed", "order.held", "order.cancelled"]


def test_returns_validate_and_need_the_right_scope(
    evented: tuple[TestClient, Any, Receiver],
) -> None:
    client, runtime, _ = evented
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 3})
    body = _order(sku, 2)
    oid = body["order_id"]
    client.post("/v1/orders", json=body).raise_for_status()
    r = client.post(f"/v1/orders/{oid}/returns", json={"lines": [{"line_id": "1", "qty": 1}]})
    assert r.status_code == 422 and r.json()["field"] == "lines[0].line_id"  # not shipped yet
    client.post(f"/v1/orders/{oid}/shipments", json={}).raise_for_status()
    r = client.post(f"/v1/orders/{oid}/returns", json={"lines": [{"line_id": "1", "qty": 5}]})
    assert r.status_code == 422 and r.json()["field"] == "lines[0].qty"
    r = client.post(f"/v1/orders/{oid}/returns", json={"lines": []})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines"
    assert (
        client.post(
            "/v1/orders/nope/returns", json={"lines": [{"line_id": "1", "qty": 1}]}
        ).status_code
        == 404
    )
    ret = client.post(
        f"/v1/orders/{oid}/returns", json={"lines": [{"line_id": "1", "qty": 2}]}
    ).json()
    bad = client.post(
        f"/v1/returns/{ret['return_id']}/receipts",
        json={"lines": [{"line_id": "1", "qty": 1, "condition": "lost"}]},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "lines.0.condition"
    orders_only = runtime.keys.create({"orders"}, "orders-only")
    r = client.post(
        f"/v1/returns/{ret['return_id']}/receipts",
        json={"lines": [{"line_id": "1", "qty": 1, "condition": "damaged"}]},
        headers={"Authorization": f"Bearer {orders_only}"},
    )
    assert r.status_code == 403
    r = client.post(
        f"/v1/returns/{ret['return_id']}/receipts",
        json={"lines": [{"line_id": "1", "qty": 2, "condition": "damaged"}]},
    )
    assert r.status_code == 200 and r.json()["lines"][0]["damaged"] == 2
    assert _available(client, sku) == (1, 0)  # damaged units never re-enter stock
    assert client.get("/v1/returns/R-nope").status_code == 404
