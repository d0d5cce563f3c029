"""Order orchestration over HTTP, the same suite on SQLite and on PostgreSQL.

Real app, real models and features from the demo world, a real ledger database per test
module. Stock is set through the inventory API, so each test knows exactly what exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings
from tests.support.services import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("orders")]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest,
    demo_home: tuple[Settings, DemoReport],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Any]]:
    settings, _ = demo_home
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'ledger.db'}"
        else:
            name = stack.enter_context(postgres_database("rc_api"))
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        app = create_app(settings.model_copy(update={"database_url": url}), background=False)
        with TestClient(app) as client:
            runtime = app.state.runtime
            client.headers["Authorization"] = "Bearer " + runtime.keys.create(
                {"route", "orders", "inventory", "admin"}, "tests"
            )
            yield client, runtime


@pytest.fixture(autouse=True)
def ledger_invariants(api: tuple[TestClient, Any]) -> Iterator[None]:
    yield
    _, runtime = api
    assert runtime.ledger.invariant_violations() == []


def _set_stock(client: TestClient, sku: str, by_node: dict[str, int]) -> None:
    """Count ``sku`` at every node that has it: the given quantity, 0 elsewhere."""
    nodes = [lv["node_id"] for lv in client.get(f"/v1/inventory/{sku}").json()["nodes"]]
    nodes = sorted(set(nodes) | set(by_node))
    events = [
        {
            "event_id": f"cnt-{uuid.uuid4().hex}",
            "event_time": datetime.now(UTC).isoformat(),
            "node_id": n,
            "sku": sku,
            "kind": "count",
            "qty": by_node.get(n, 0),
        }
        for n in nodes
    ]
    r = client.post("/v1/inventory/adjustments", json={"events": events})
    assert r.status_code == 200, r.text


def _fresh_sku(client: TestClient, runtime: Any) -> str:
    """A SKU no other test in this module has touched (tests share the ledger)."""
    used = runtime.__dict__.setdefault("_test_used_skus", set())
    for sku in sorted(runtime.skus.values(), key=lambda r: r.sku):
        levels = client.get(f"/v1/inventory/{sku.sku}").json()["nodes"]
        if sku.sku not in used and len(levels) >= 3:
            used.add(sku.sku)
            return sku.sku
    raise AssertionError("no SKU left")


def _order(sku: str, qty: int = 1, order_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "order_id": order_id or f"T-{uuid.uuid4().hex[:12]}",
        "channel": "web",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [{"line_id": "1", "sku": sku, "qty": qty}],
        **extra,
    }


def _available(client: TestClient, sku: str) -> tuple[int, int]:
    nodes = client.get(f"/v1/inventory/{sku}").json()["nodes"]
    return sum(n["available"] for n in nodes), sum(n["reserved"] for n in nodes)


def _dc_ids(runtime: Any) -> list[str]:
    return sorted(n.node_id for n in runtime.nodes if n.node_type == "dc" and n.enabled)


def test_fifty_concurrent_placements_reserve_exactly_ten(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 10})

    def place(i: int) -> int:
        r = client.post(
            "/v1/orders",
            json=_order(sku, order_id=f"C-{sku}-{i}"),
            headers={"Idempotency-Key": f"k-{sku}-{i}"},
        )
        return r.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(place, range(50)))
    assert codes.count(201) == 10, codes
    assert codes.count(409) == 40, codes
    assert all(c < 500 for c in codes)
    assert _available(client, sku) == (0, 10)


def test_same_key_same_body_replays_and_reserves_once(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 5})
    body = _order(sku, 2)
    first = client.post("/v1/orders", json=body, headers={"Idempotency-Key": "same-" + sku})
    again = client.post("/v1/orders", json=body, headers={"Idempotency-Key": "same-" + sku})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _available(client, sku) == (3, 2)
    other = client.post(
        "/v1/orders", json=_order(sku, 1), headers={"Idempotency-Key": "same-" + sku}
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")
    assert _available(client, sku) == (3, 2)


def test_concurrent_duplicates_reserve_once(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 8})
    body = _order(sku, 1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(
            pool.map(
                lambda _: (
                    client.post(
                        "/v1/orders", json=body, headers={"Idempotency-Key": "dup-" + sku}
                    ).status_code
                ),
                range(8),
            )
        )
    assert set(codes) <= {201, 409}, codes
    assert 201 in codes
    assert _available(client, sku) == (7, 1)


def test_unfillable_order_reserves_nothing(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    other = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 3})
    _set_stock(client, other, {})
    too_many = client.post(
        "/v1/orders", json=_order(sku, 4), headers={"Idempotency-Key": "big-" + sku}
    )
    assert too_many.status_code == 409
    problem = too_many.json()
    assert problem["type"].endswith("unfillable") and problem["unallocated"]
    body = _order(sku, 1)
    body["lines"].append({"line_id": "2", "sku": other, "qty": 1})
    half = client.post("/v1/orders", json=body)
    assert half.status_code == 409
    assert _available(client, sku) == (3, 0)
    # the failed key is free again: retrying after a restock succeeds
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 4})
    retry = client.post(
        "/v1/orders", json=_order(sku, 4), headers={"Idempotency-Key": "big-" + sku}
    )
    assert retry.status_code == 201, retry.text


def test_rejection_reroutes_to_the_next_node(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    dcs = _dc_ids(runtime)
    _set_stock(client, sku, {dcs[0]: 5, dcs[1]: 5})
    placed = client.post("/v1/orders", json=_order(sku, 2))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    first_node = placed.json()["allocations"][0]["node_id"]
    r = client.post(
        f"/v1/orders/{order_id}/rejections",
        json={"node_id": first_node, "line_ids": ["1"], "reason": "not_in_stock"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rerouted"] is True
    live = [a for a in out["order"]["allocations"] if a["status"] == "reserved"]
    assert len(live) == 1 and live[0]["node_id"] != first_node and live[0]["qty"] == 2
    levels = {n["node_id"]: n for n in client.get(f"/v1/inventory/{sku}").json()["nodes"]}
    assert levels[first_node]["available"] == 0
    # the rejection is a training label in the canonical allocations format
    from serving.label_export import allocation_labels

    labels = allocation_labels(runtime.engine)
    mine = labels[labels["order_id"] == order_id]
    rejected = mine[mine["rejected"]]
    assert list(rejected["node_id"]) == [first_node] and list(rejected["reason"]) == [
        "not_in_stock"
    ]
    assert (~mine["rejected"]).sum() == 1


def test_ship_and_cancel_move_stock(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    dc = _dc_ids(runtime)[0]
    _set_stock(client, sku, {dc: 6})
    a = client.post("/v1/orders", json=_order(sku, 2)).json()["order_id"]
    b = client.post("/v1/orders", json=_order(sku, 3)).json()["order_id"]
    assert _available(client, sku) == (1, 5)
    shipped = client.post(f"/v1/orders/{a}/shipments", json={})
    assert shipped.status_code == 200 and shipped.json()["status"] == "shipped"
    cancelled = client.post(f"/v1/orders/{b}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    node = next(n for n in client.get(f"/v1/inventory/{sku}").json()["nodes"] if n["node_id"] == dc)
    assert (node["on_hand"], node["reserved"], node["available"]) == (4, 0, 4)
    assert client.get(f"/v1/orders/{a}").json()["status"] == "shipped"
    assert client.get("/v1/orders/nope").status_code == 404


def test_shipment_keeps_carrier_and_delivery_is_confirmed_once(
    api: tuple[TestClient, Any],
) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {_dc_ids(runtime)[0]: 3})
    oid = client.post("/v1/orders", json=_order(sku, 1)).json()["order_id"]
    shipped = client.post(
        f"/v1/orders/{oid}/shipments", json={"carrier": "UPS", "tracking": "1ZTEST"}
    ).json()
    (parcel,) = shipped["shipments"]
    assert (parcel["carrier"], parcel["tracking_number"], parcel["line_ids"]) == (
        "UPS",
        "1ZTEST",
        ["1"],
    )
    delivered_at = "2099-01-03T15:00:00+00:00"
    body = {
        "deliveries": [
            {
                "event_id": f"dl-{oid}",
                "delivered_at": delivered_at,
                "tracking_number": "1ZTEST",
                "carrier": "UPS",
            }
        ]
    }
    first = client.post(f"/v1/orders/{oid}/deliveries", json=body)
    again = client.post(f"/v1/orders/{oid}/deliveries", json=body)
    assert first.status_code == again.status_code == 200, first.text
    assert [d["outcome"] for d in first.json()["deliveries"]] == ["applied"]
    assert [d["outcome"] for d in again.json()["deliveries"]] == ["duplicate"]
    got = client.get(f"/v1/orders/{oid}").json()["shipments"][0]
    assert (got["shipment_id"], got["delivered_at"]) == (parcel["shipment_id"], delivered_at)

    naive = {"deliveries": [{"event_id": "n", "delivered_at": "2099-01-03T15:00:00"}]}
    r = client.post(f"/v1/orders/{oid}/deliveries", json=naive)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "deliveries.0.delivered_at"
    wrong = {
        "deliveries": [
            {
                "event_id": "w",
                "delivered_at": delivered_at,
                "shipment_id": parcel["shipment_id"],
                "carrier": "DHL",
            }
        ]
    }
    r = client.post(f"/v1/orders/{oid}/deliveries", json=wrong)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "deliveries[0].carrier" and "UPS" in r.json()["detail"]
    assert client.post("/v1/orders/nope/deliveries", json=body).status_code == 404


def test_closed_node_is_never_chosen(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    dcs = _dc_ids(runtime)
    _set_stock(client, sku, {dcs[0]: 50, dcs[1]: 1})
    now = datetime.now(UTC)
    closure = {
        "closures": [
            {
                "start": now.replace(hour=0, minute=0).isoformat(),
                "end": now.replace(year=now.year + 1).isoformat(),
            }
        ]
    }
    assert client.put(f"/v1/nodes/{dcs[0]}/calendar", json=closure).status_code == 200
    try:
        plan = client.post("/v1/route", json=_order(sku, 1)).json()
        assert [a["node_id"] for a in plan["allocations"]] == [dcs[1]]
    finally:
        client.put(f"/v1/nodes/{dcs[0]}/calendar", json={})


def test_answers_carry_a_promise_held_by_the_node_calendar(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    dc = _dc_ids(runtime)[0]
    _set_stock(client, sku, {dc: 5})
    tz = ZoneInfo(next(n.timezone for n in runtime.nodes if n.node_id == dc))
    today = datetime.now(UTC).astimezone(tz).date()
    off = [(today + timedelta(days=k)).isoformat() for k in (1, 2)]
    # a cut-off at midnight means every order waits for tomorrow, and tomorrow is a holiday
    calendar = {"cutoff": "00:00", "holidays": off}
    assert client.put(f"/v1/nodes/{dc}/calendar", json=calendar).status_code == 200
    try:
        placed = client.post("/v1/orders", json=_order(sku, 1)).json()
    finally:
        client.put(f"/v1/nodes/{dc}/calendar", json={})
    promise = placed["decision"]["promise"]
    assert promise["timezone"] == "America/New_York"  # from the destination's postal code
    (leg,) = promise["shipments"]
    assert (leg["node_id"], leg["held_days"]) == (dc, 2)
    assert datetime.fromisoformat(leg["ships_at"]).astimezone(tz).date() == today + timedelta(3)
    assert promise["ship_by"] <= promise["deliver_p50"] <= promise["deliver_by"]
    assert promise["confidence"] == 0.9
    stored = client.get(f"/v1/decisions/{placed['decision']['decision_id']}").json()
    assert stored["plan"]["promise"] == promise
    bad = _order(sku, 1)
    bad["destination"]["timezone"] = "Mars/Olympus"
    r = client.post("/v1/route", json=bad)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "destination.timezone"


def test_adjustments_are_idempotent_and_ordered(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    dc = _dc_ids(runtime)[0]
    now = datetime.now(UTC)
    newer = {
        "event_id": f"n-{sku}",
        "event_time": now.isoformat(),
        "node_id": dc,
        "sku": sku,
        "kind": "count",
        "qty": 7,
        "source": "POS",
    }
    older = {**newer, "event_id": f"o-{sku}", "event_time": (now - timedelta(days=1)).isoformat()}
    older["qty"] = 99
    older["source"] = "WMS"
    resend = {**newer, "source": "marketplace"}
    r1 = client.post("/v1/inventory/adjustments", json={"events": [newer]}).json()["results"][0]
    r2 = client.post("/v1/inventory/adjustments", json={"events": [resend]}).json()["results"][0]
    r3 = client.post("/v1/inventory/adjustments", json={"events": [older]}).json()["results"][0]
    assert (r1["outcome"], r2["outcome"], r3["outcome"]) == ("applied", "duplicate", "stale")
    assert r3["on_hand"] == 7
    # The sending channel is kept with the event: a resend from elsewhere shows the first sender.
    assert (r1["source"], r2["source"], r3["source"]) == ("POS", "POS", "WMS")


def test_keys_and_scopes(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    anon = client.post("/v1/route", json=_order(sku), headers={"Authorization": ""})
    assert anon.status_code == 401 and "routecast keys create" in anon.json()["detail"]
    route_only = runtime.keys.create({"route"})
    ok = client.post(
        "/v1/route", json=_order(sku), headers={"Authorization": f"Bearer {route_only}"}
    )
    assert ok.status_code == 200
    denied = client.post(
        "/v1/orders", json=_order(sku), headers={"Authorization": f"Bearer {route_only}"}
    )
    assert denied.status_code == 403
    forged = route_only[:-4] + "AAAA"
    assert (
        client.post(
            "/v1/route", json=_order(sku), headers={"Authorization": f"Bearer {forged}"}
        ).status_code
        == 401
    )


def test_every_decision_is_audited(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    plan = client.post("/v1/route", json=_order(sku)).json()
    stored = client.get(f"/v1/decisions/{plan['decision_id']}").json()
    assert stored["plan"]["decision_id"] == plan["decision_id"]
    assert stored["model_versions"] == plan["models"]


def test_decision_endpoints_take_the_direct_path() -> None:
    """``POST /v1/route`` and ``POST /v1/orders`` skip FastAPI's per-request parameter
    resolution (``serving.deps.DecisionRoute``); a parameter it cannot resolve from the request
    would silently send them back through FastAPI, so this names them."""
    from serving.deps import DecisionRoute
    from serving.routers import orders, route

    direct = {
        (method, r.path)
        for module in (route, orders)
        for r in module.router.routes
        if isinstance(r, DecisionRoute) and r.direct
        for method in r.methods
    }
    assert direct == {("POST", "/v1/route"), ("POST", "/v1/orders")}


def test_route_answer_is_its_response_model(api: tuple[TestClient, Any]) -> None:
    """``/v1/route`` writes the decision's answer straight to JSON: it must be exactly what
    validating it against ``RouteResponse`` gives (every field present, nothing coerced),
    and the OpenAPI document must still name that model."""
    from serving.schemas.order import RouteResponse

    client, runtime = api
    sku = _fresh_sku(client, runtime)
    for order in (_order(sku, 1), _order(sku, 10**6), _order(sku, 1, mode="cost")):
        r = client.post("/v1/route", json=order)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        body = r.json()
        assert RouteResponse.model_validate(body).model_dump(mode="json") == body
    ok = client.app.openapi()["paths"]["/v1/route"]["post"]["responses"]["200"]  # type: ignore[attr-defined]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/RouteResponse")
