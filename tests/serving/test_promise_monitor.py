"""Promise monitoring over HTTP: confirmed deliveries are checked against the promise made,
summarised overall, per node and per lane (API and Prometheus), and a lane that keeps missing
its dates gets a wider P90 in its next promises until the delivery model changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from serving.demo import DemoReport
from serving.settings import Settings
from tests.support.apps import api_client

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

DEST = {"country": "US", "postal_code": "10001"}  # New York: region NY


@pytest.fixture
def api(demo_home: tuple[Settings, DemoReport], tmp_path: Any) -> Iterator[tuple[TestClient, Any]]:
    settings, _ = demo_home
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with api_client(settings, url, promise_min_deliveries=4) as pair:
        yield pair


def _stock(client: TestClient, node: str, sku: str, qty: int) -> None:
    event = {
        "event_id": f"cnt-{uuid.uuid4().hex}",
        "event_time": datetime.now(UTC).isoformat(),
        "node_id": node,
        "sku": sku,
        "kind": "count",
        "qty": qty,
    }
    others = [
        {**event, "event_id": f"cnt-{uuid.uuid4().hex}", "node_id": lv["node_id"], "qty": 0}
        for lv in client.get(f"/v1/inventory/{sku}").json()["nodes"]
        if lv["node_id"] != node
    ]
    r = client.post("/v1/inventory/adjustments", json={"events": [event, *others]})
    assert r.status_code == 200, r.text


def _place(client: TestClient, sku: str) -> dict[str, Any]:
    body = {
        "order_id": f"P-{uuid.uuid4().hex[:12]}",
        "channel": "web",
        "destination": DEST,
        "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
    }
    r = client.post("/v1/orders", json=body)
    assert r.status_code == 201, r.text
    return {"order_id": body["order_id"], "promise": r.json()["decision"]["promise"]}


def _deliver(client: TestClient, order: dict[str, Any], on: date) -> None:
    oid = order["order_id"]
    shipped = client.post(f"/v1/orders/{oid}/shipments", json={"carrier": "UPS"})
    assert shipped.status_code == 200, shipped.text
    tz = ZoneInfo(order["promise"]["timezone"])
    at = datetime.combine(on, time(15), tzinfo=tz).astimezone(UTC)
    body = {"deliveries": [{"event_id": f"dl-{oid}", "delivered_at": at.isoformat()}]}
    r = client.post(f"/v1/orders/{oid}/deliveries", json=body)
    assert r.status_code == 200 and r.json()["deliveries"][0]["outcome"] == "applied", r.text


def test_late_lane_is_measured_published_and_widened(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    sku = sorted(runtime.skus)[0]
    node = next(n.node_id for n in runtime.nodes if n.node_type == "dc" and n.enabled)
    _stock(client, node, sku, 50)

    first = _place(client, sku)
    promise = first["promise"]
    assert (promise["dest_region"], promise["delivery_model"]) == (
        "NY",
        runtime.delivery_model_key(),
    )
    (leg,) = promise["shipments"]
    assert leg["node_id"] == node and leg["p90_widening_days"] == 0.0
    by = date.fromisoformat(leg["deliver_by"])
    p50 = date.fromisoformat(leg["deliver_p50"])

    # one kept on its P50 date, then four delivered a week after deliver_by
    _deliver(client, first, p50)
    late = [_place(client, sku) for _ in range(4)]
    for order in late:
        _deliver(client, order, date.fromisoformat(order["promise"]["deliver_by"]) + timedelta(7))

    summary = client.get("/v1/promises/summary").json()
    assert summary["overall"]["deliveries"] == 5
    assert summary["overall"]["on_time"] == 1 and summary["overall"]["coverage"] == 0.2
    (lane,) = summary["lanes"]
    assert (lane["node_id"], lane["dest_region"], lane["below_target"]) == (node, "NY", True)
    # the conformal quantile of residuals [≤0, 7, 7, 7, 7] at 0.9 is 7 days
    assert lane["widen_days"] == 7.0
    assert summary["nodes"] == [{"node_id": node, **summary["overall"]}]
    assert summary["overall"]["p50_mae_days"] > 0

    runtime.promises.publish_if_dirty()
    text = client.get("/metrics").text
    assert "routecast_promise_coverage 0.2" in text
    assert (
        f'routecast_promise_lane_p90_widening_days{{dest_region="NY",node_id="{node}"}} 7.0' in text
    )

    widened = _place(client, sku)["promise"]["shipments"][0]
    assert widened["p90_widening_days"] == 7.0
    assert date.fromisoformat(widened["deliver_by"]) >= by + timedelta(days=7)

    # another delivery model (a retrained champion) starts from its own quantiles
    runtime.promises.model_key = lambda: "routecast-delivery-days/999"
    assert _place(client, sku)["promise"]["shipments"][0]["p90_widening_days"] == 0.0

    assert client.get("/v1/promises/summary?since=soon").status_code == 422


def test_summary_needs_the_route_scope(api: tuple[TestClient, Any]) -> None:
    client, runtime = api
    key = runtime.keys.create({"inventory"}, "no-route")
    r = client.get("/v1/promises/summary", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
