"""The API's edges, on SQLite and PostgreSQL: every bad input is a 4xx problem naming the field,
the backends refuse the same inputs, limits hold before the body is read, daily capacity holds
under concurrency, and feature failures show in readiness.

Each test here is a regression test for a defect found by hand-made bad requests and
schema fuzzing (see docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving import metrics
from serving.demo import DemoReport
from serving.settings import Settings
from tests.serving.test_orders_api import _fresh_sku, _order, _set_stock
from tests.support.apps import api_client, ledger_url

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("edges")]

LEAKS = ("Traceback", "sqlalchemy", "psycopg", "SELECT ", "INSERT ", 'File "')


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest,
    demo_home: tuple[Settings, DemoReport],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, Any]]:
    settings, _ = demo_home
    folder = tmp_path_factory.mktemp("edges")
    with (
        ledger_url(request.param, folder, "rc_edges") as url,
        api_client(settings, url, max_body_bytes=1_000_000) as (client, runtime),
    ):
        yield client, runtime


@pytest.fixture(autouse=True)
def ledger_invariants(api: tuple[TestClient, Any]) -> Iterator[None]:
    yield
    _, runtime = api
    assert runtime.ledger.invariant_violations() == []


def _problem(r: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with ``status`` naming ``field``; nothing leaks."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert not any(leak in r.text for leak in LEAKS), r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"].startswith("https://")
    if field is not None:
        named = [e["field"] for e in body.get("errors", [])] + [body.get("field", "")]
        assert any(field in f for f in named) or field in body["detail"], body
    return body


def _post_raw(client: TestClient, path: str, text: str, **headers: str) -> Any:
    return client.post(
        path, content=text.encode(), headers={"content-type": "application/json", **headers}
    )


# -- finding 1: far dates and huge calendars ------------------------------------------------


def test_far_closure_is_refused_and_routing_keeps_working(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    node = runtime.nodes[0].node_id
    far = {"closures": [{"start": "2026-12-01T00:00:00", "end": "9999-12-31T23:00:00-14:00"}]}
    _problem(client.put(f"/v1/nodes/{node}/calendar", json=far), 422, "closures.0.end")
    early = {"closures": [{"start": "0001-01-01T00:00:00+14:00", "end": "2026-01-01T00:00"}]}
    _problem(client.put(f"/v1/nodes/{node}/calendar", json=early), 422, "closures.0.start")
    sku = _fresh_sku(client, runtime)
    assert client.post("/v1/route", json=_order(sku)).status_code == 200


def test_calendar_closure_count_is_bounded(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    node = runtime.nodes[0].node_id
    day = datetime(2030, 1, 1)
    many = [
        {
            "start": (day + timedelta(hours=i)).isoformat(),
            "end": (day + timedelta(hours=i, minutes=30)).isoformat(),
        }
        for i in range(101)
    ]
    _problem(client.put(f"/v1/nodes/{node}/calendar", json={"closures": many}), 422, "closures")
    ok = client.put(f"/v1/nodes/{node}/calendar", json={"closures": many[:100]})
    assert ok.status_code == 200, ok.text
    assert client.put(f"/v1/nodes/{node}/calendar", json={}).status_code == 200


# -- finding 3: numbers that overflow ----------------------------------------------------------


@pytest.mark.parametrize(
    "qty", ["1e400", "Infinity", "-Infinity", "NaN", "9223372036854775808", "5e-324", "2.5", "0"]
)
def test_order_qty_out_of_range_is_a_422(api: tuple[TestClient, Any], qty: str) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    text = json.dumps(_order(sku)).replace('"qty": 1', f'"qty": {qty}')
    for path in ("/v1/route", "/v1/orders"):
        _problem(_post_raw(client, path, text), 422, "lines.0.qty")


def _event(**over: Any) -> dict[str, Any]:
    base = {
        "event_id": f"e-{uuid.uuid4().hex}",
        "event_time": datetime.now(UTC).isoformat(),
        "node_id": "X",
        "sku": "Y",
        "kind": "delta",
        "qty": 1,
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"qty": 2**63}, "qty"),
        ({"qty": 10**30}, "qty"),
        ({"qty": -(2**63)}, "qty"),
        ({"event_time": "9999-12-31T23:00:00+14:00"}, "event_time"),
        ({"event_time": "9999-12-31T23:00:00-14:00"}, "event_time"),
        ({"event_time": "0001-01-01T00:00:00+14:00"}, "event_time"),
        ({"event_time": "2026-01-01T00:00:00"}, "event_time"),
        ({"node_id": "a\u0000b"}, "node_id"),
        ({"sku": "S" * 65}, "sku"),
        ({"sku": "\ud800"}, "sku"),
        ({"event_id": ""}, "event_id"),
        ({"source": "x" * 1000}, "source"),
    ],
)
def test_bad_adjustment_is_a_422(
    api: tuple[TestClient, Any], over: dict[str, Any], field: str
) -> None:
    client, runtime = api
    event = _event(**{"node_id": runtime.nodes[0].node_id, **over})
    r = _post_raw(client, "/v1/inventory/adjustments", json.dumps({"events": [event]}))
    _problem(r, 422, f"events.0.{field}")


def test_capacity_beyond_int4_is_a_422(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    node = runtime.nodes[0].node_id
    _problem(
        client.put(f"/v1/nodes/{node}/capacity", json={"daily_capacity": 2**31}),
        422,
        "daily_capacity",
    )


# -- finding 4: the backends refuse the same ids --------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"order_id": "A\u0000"},
        {"order_id": "A\ud800"},
        {"order_id": "O" * 65},
        {"pickup_node_id": "N\u0000"},
        {"channel": "c" * 33},
        {"destination": {"country": "US", "postal_code": "100\u000001"}},
    ],
)
def test_bad_ids_in_orders_are_refused_on_both_backends(
    api: tuple[TestClient, Any], change: dict[str, Any]
) -> None:
    client, runtime = api
    body = {**_order(_fresh_sku(client, runtime)), **change}
    for path in ("/v1/route", "/v1/orders"):
        _problem(_post_raw(client, path, json.dumps(body)), 422, next(iter(change)))


@pytest.mark.parametrize("line", [{"sku": "S" * 65}, {"sku": "a\u0000"}, {"line_id": "\udfff"}])
def test_bad_line_ids_are_refused(api: tuple[TestClient, Any], line: dict[str, Any]) -> None:
    client, runtime = api
    body = _order(_fresh_sku(client, runtime))
    body["lines"][0].update(line)
    _problem(_post_raw(client, "/v1/route", json.dumps(body)), 422, f"lines.0.{next(iter(line))}")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/orders/a%00b",
        "/v1/orders/" + "o" * 129,
        "/v1/inventory/" + "S" * 65,
        "/v1/inventory/a%00",
        "/v1/decisions/%01",
    ],
)
def test_bad_path_ids_are_refused(api: tuple[TestClient, Any], path: str) -> None:
    client, _ = api
    _problem(client.get(path), 422)


def test_node_path_id_is_bounded(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    _problem(client.put("/v1/nodes/" + "n" * 65 + "/capacity", json={"daily_capacity": 1}), 422)


def test_rejection_line_id_list_is_bounded(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    node = runtime.nodes[0].node_id
    body = {"node_id": node, "line_ids": [str(i) for i in range(100_000)], "reason": "damaged"}
    r = client.post("/v1/orders/whatever/rejections", json=body)
    _problem(r, 422, "line_ids")
    ship = client.post(
        "/v1/orders/whatever/shipments", json={"line_ids": [str(i) for i in range(1001)]}
    )
    _problem(ship, 422, "line_ids")


# -- finding 5: a count stamped in the future ------------------------------------------------


def test_future_count_is_refused_and_stock_stays_live(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    node = client.get(f"/v1/inventory/{sku}").json()["nodes"][0]["node_id"]
    _set_stock(client, sku, {node: 5})
    future = _event(node_id=node, sku=sku, kind="count", qty=500, event_time="2099-01-01T00:00:00Z")
    _problem(client.post("/v1/inventory/adjustments", json={"events": [future]}), 422, "event_time")
    now = _event(node_id=node, sku=sku, kind="count", qty=7)
    [res] = client.post("/v1/inventory/adjustments", json={"events": [now]}).json()["results"]
    assert (res["outcome"], res["on_hand"]) == ("applied", 7)


# -- finding 6: body limit before parsing, authentication before the body ---------------------


def test_oversized_body_is_refused_before_it_is_read(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    big = b"[" + b"1," * 600_000 + b"1]"  # 1.2 MB, over the 1 MB limit of this app
    anon = client.post("/v1/orders", content=big, headers={"Authorization": ""})
    _problem(anon, 401)  # no key: refused from the headers alone
    r = client.post(
        "/v1/inventory/adjustments", content=big, headers={"content-type": "application/json"}
    )
    _problem(r, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(12):
            yield b" " * 100_000

    streamed = client.post(
        "/v1/inventory/adjustments", content=chunks(), headers={"content-type": "application/json"}
    )
    _problem(streamed, 413)


def test_garbage_without_a_key_is_a_401_not_a_parse_error(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    r = client.post(
        "/v1/orders",
        content=b"{not json",
        headers={"Authorization": "", "content-type": "application/json"},
    )
    assert r.headers.get("www-authenticate") == "Bearer"
    _problem(r, 401)


# -- finding 7: empty Idempotency-Key ----------------------------------------------------------


def test_empty_idempotency_key_is_a_422_naming_the_header(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {})
    for _ in range(2):
        r = client.post("/v1/orders", json=_order(sku), headers={"Idempotency-Key": ""})
        _problem(r, 422, "idempotency-key")


# -- finding 8: daily capacity under load --------------------------------------------------------


def test_capacity_two_holds_for_eighty_concurrent_orders(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    nodes = [n.node_id for n in runtime.nodes]
    _set_stock(client, sku, {n: 200 for n in nodes})
    for n in nodes:
        assert client.put(f"/v1/nodes/{n}/capacity", json={"daily_capacity": 2}).status_code == 200
    try:
        before = runtime.ledger.orders_today()

        def place(i: int) -> int:
            return client.post(
                "/v1/orders", json=_order(sku, 1, order_id=f"cap-{sku}-{i}")
            ).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(place, range(80)))
        assert set(codes) <= {201, 409}, codes
        after = runtime.ledger.orders_today()
        assert all(after[n] <= 2 for n in nodes), after
        taken = sum(after[n] - before.get(n, 0) for n in nodes)
        assert codes.count(201) == taken
    finally:
        for n in nodes:
            client.put(f"/v1/nodes/{n}/capacity", json={"daily_capacity": 0})


# -- finding 9: every answer is a problem the OpenAPI document describes ------------------------


def test_non_json_and_unknown_paths_are_problems(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    _problem(_post_raw(client, "/v1/route", "{not json"), 422)
    _problem(client.post("/v1/route", content=b"x", headers={"content-type": "text/plain"}), 422)
    _problem(client.get("/v1/nope"), 404)
    _problem(client.delete("/v1/route"), 405)


def test_openapi_documents_problems(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    doc = client.get("/openapi.json").json()
    place = doc["paths"]["/v1/orders"]["post"]["responses"]
    for code in ("401", "403", "404", "409", "413", "422", "503"):
        assert "application/problem+json" in place[code]["content"], code
    qty = doc["components"]["schemas"]["OrderLineIn"]["properties"]["qty"]
    assert (qty["type"], qty["minimum"], qty["maximum"]) == ("integer", 1, 1_000_000)
    schemes = doc["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)


def test_bearer_wins_over_x_api_key(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    r = client.get("/v1/skus", headers={"X-API-Key": "rc_bogus_key"})
    assert r.status_code == 200, r.text


# -- finding 10: silent failures ------------------------------------------------------------------


def test_lost_audit_record_is_counted_not_silent(
    api: tuple[TestClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)

    def down(*_: Any, **__: Any) -> bool:
        raise ConnectionError("audit store down")

    monkeypatch.setattr(runtime.ledger, "record_decisions", down)
    monkeypatch.setattr(runtime.audits, "sleep", lambda _s: None)
    before = metrics.AUDIT_FAILURES._value.get()
    assert client.post("/v1/route", json=_order(sku)).status_code == 200
    runtime.audits.flush()
    assert metrics.AUDIT_FAILURES._value.get() == before + 1


def test_failing_feature_refresh_shows_in_readiness(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    assert client.get("/readyz").json()["reasons"] == []
    good_settings, good_store = runtime.settings, runtime._store
    runtime.settings = good_settings.model_copy(
        update={"online_store": "redis", "redis_url": "redis://127.0.0.1:9/0"}
    )
    runtime._store = None
    try:
        runtime.refresh_features()
        r = client.get("/readyz")
        assert r.status_code == 200  # the last snapshot still serves
        body = r.json()
        assert body["status"] == "degraded"
        assert any("feature refresh failed" in reason for reason in body["reasons"]), body
    finally:
        runtime.settings, runtime._store = good_settings, good_store
        runtime.refresh_features()
    assert client.get("/readyz").json()["status"] == "ready"


def test_registry_lost_while_running_keeps_the_champion(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = _fresh_sku(client, runtime)
    good = runtime.models.tracking_uri
    runtime.models.tracking_uri = "sqlite:////nonexistent-registry/mlflow.db"
    try:
        runtime.refresh_models()
        answer = client.post("/v1/route", json=_order(sku)).json()
        assert (answer["mode"], answer["degraded"]) == ("predictive", False), answer
        reasons = client.get("/readyz").json()["reasons"]
        assert any("refresh failed" in r for r in reasons), reasons
    finally:
        runtime.models.tracking_uri = good
        runtime.refresh_models()
    assert not any("refresh failed" in r for r in client.get("/readyz").json()["reasons"])


# -- finding 11: access ------------------------------------------------------------------------


def test_models_need_a_key(api: tuple[TestClient, Any]) -> None:
    client, _ = api
    _problem(client.get("/v1/models", headers={"Authorization": ""}), 401)
    assert client.get("/v1/models").status_code == 200


def test_every_endpoint_checks_its_scope(api: tuple[TestClient, Any]) -> None:
    """No key, a wrong key, a revoked key and keys without the scope are all refused on every
    versioned endpoint of the OpenAPI document; exactly one scope (and admin) opens each, so a
    new endpoint without a scope fails this test."""
    client, runtime = api
    scopes = ("route", "orders", "inventory", "admin")
    keys = {s: runtime.keys.create({s}, f"only-{s}") for s in scopes}
    revoked = runtime.keys.create({"admin"}, "revoked")
    runtime.keys.revoke(revoked.split("_")[1])
    doc = client.get("/openapi.json").json()
    endpoints = [
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        if path.startswith("/v1/")
        for method in ops
    ]
    assert len(endpoints) >= 12
    for method, template in endpoints:
        path = template.replace("{", "x").replace("}", "")

        def call(headers: dict[str, str], method: str = method, path: str = path) -> Any:
            return client.request(method, path, json={}, headers=headers)

        for bad in ("", "Bearer rc_0000_wrong", f"Bearer {revoked}"):  # none, wrong, revoked
            _problem(call({"Authorization": bad}), 401)
        allowed = set()
        for scope, key in keys.items():
            r = call({"Authorization": f"Bearer {key}"})
            assert r.status_code != 401 and not any(leak in r.text for leak in LEAKS), r.text
            if r.status_code == 403:
                _problem(r, 403)
            else:
                allowed.add(scope)
        assert "admin" in allowed and len(allowed - {"admin"}) <= 1, (method, template, allowed)
