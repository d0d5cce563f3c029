"""Events over HTTP on SQLite and PostgreSQL: read the outbox, replay an event to a real
receiver, bad input named, scopes enforced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings, WebhookEndpoint
from tests.serving.test_orders_api import _dc_ids, _fresh_sku, _order, _set_stock
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
