"""Ledger movements reach the features the models score with, through Feast's push path, and
a demo whose features are days old is brought forward at start instead of serving degraded."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from features import catalog
from serving.app import create_app
from serving.demo import DemoReport
from serving.runtime import Runtime
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


@pytest.fixture(scope="module")
def own_demo(
    demo_home: tuple[Settings, DemoReport], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A private copy of the demo: these tests write to its online store."""
    settings, _ = demo_home
    home = tmp_path_factory.mktemp("live") / "home"
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("ledger.db*"))
    return settings.model_copy(
        update={"home": home, "database_url": f"sqlite:///{home / 'ledger.db'}"}
    )


def _online_on_hand(runtime: Runtime, node: str, sku: str) -> tuple[float, int]:
    view = catalog.VIEW_NODE_SKU_INVENTORY
    got = (
        runtime.open_feature_store()
        .get_online_features(
            features=[f"{view}:on_hand"], entity_rows=[{"node_id": node, "sku": sku}]
        )
        .to_dict(include_event_timestamps=True)
    )
    return got["on_hand"][0], int(got["on_hand__ts"][0])


def test_a_demo_built_days_ago_is_brought_forward_at_start(own_demo: Settings) -> None:
    later = (datetime.now(UTC) + timedelta(hours=80)).replace(microsecond=0)

    def clock() -> datetime:
        return later

    as_built = Runtime(own_demo.model_copy(update={"bring_forward_stale_features": False}))
    as_built.start(background=False)
    try:
        reasons = as_built.degraded_reasons(later)
        assert any("features are" in r for r in reasons), reasons
    finally:
        as_built.stop()

    app = create_app(own_demo, background=False, clock=clock)
    with TestClient(app) as client:
        runtime = app.state.runtime
        assert runtime.degraded_reasons(later) == []
        stats = runtime.live.stats
        assert stats.brought_forward_from_hours is not None
        assert stats.brought_forward_from_hours > own_demo.feature_staleness_hours
        assert stats.batch_rows_carried > 0  # node and lane rows re-dated, values kept
        pos = runtime.ledger.positions()[0]
        on_hand, stamp = _online_on_hand(runtime, pos.node_id, pos.sku)
        assert on_hand == pos.on_hand and stamp == int(later.timestamp())
        # a decision reads only rows brought forward: not degraded, and it says how old
        client.headers["X-API-Key"] = runtime.keys.create({"route"})
        order = {
            "order_id": "LATER-1",
            "channel": "web",
            "destination": {"country": "US", "postal_code": "10001"},
            "lines": [{"line_id": "1", "sku": pos.sku, "qty": 1}],
        }
        answer = client.post("/v1/route", json=order).json()
        assert answer["degraded"] is False, answer["degraded_reasons"]
        assert answer["mode"] == "predictive"
        assert datetime.fromisoformat(answer["features_as_of"]) == later


@pytest.fixture
def live_client(own_demo: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    app = create_app(own_demo.model_copy(update={"live_features_seconds": 0.5}), background=True)
    with TestClient(app) as client:
        runtime = app.state.runtime
        deadline = time.monotonic() + 300  # the server loads models and features on a thread
        while runtime.starting and time.monotonic() < deadline:
            time.sleep(0.1)
        client.headers["X-API-Key"] = runtime.keys.create({"inventory", "route", "orders"})
        yield client, runtime


def _scored(runtime: Runtime, node: str, sku: str, feature: str) -> float:
    """The value the next decision's models read (``FeatureSnapshot.gather``)."""
    snap = runtime.snapshot
    assert snap is not None
    return float(snap.gather([node], [sku], [None])[feature][0])


def _within_5s(runtime: Runtime, node: str, sku: str, wanted: dict[str, float]) -> None:
    posted = time.monotonic()
    while time.monotonic() - posted < 5.0:
        if all(_scored(runtime, node, sku, f) == v for f, v in wanted.items()):
            return
        time.sleep(0.1)
    got = {f: _scored(runtime, node, sku, f) for f in wanted}
    raise AssertionError(f"{node}/{sku}: features {got} did not reach {wanted} within 5 s")


def test_an_adjustment_changes_the_on_hand_the_next_decision_reads(
    live_client: tuple[TestClient, Runtime],
) -> None:
    client, runtime = live_client
    pos = max(runtime.ledger.positions(), key=lambda p: p.available)
    event = {
        "event_id": f"delta-{time.time_ns()}",
        "event_time": datetime.now(UTC).isoformat(),
        "node_id": pos.node_id,
        "sku": pos.sku,
        "kind": "delta",
        "qty": -5,
    }
    r = client.post("/v1/inventory/adjustments", json={"events": [event]})
    assert r.status_code == 200, r.text
    _within_5s(
        runtime,
        pos.node_id,
        pos.sku,
        {"on_hand": pos.on_hand - 5, "available": pos.available - 5, "reserved": pos.reserved},
    )
    assert _online_on_hand(runtime, pos.node_id, pos.sku)[0] == pos.on_hand - 5  # through Feast


def test_reservations_and_rejections_reach_the_features_within_seconds(
    live_client: tuple[TestClient, Runtime],
) -> None:
    client, runtime = live_client
    pos = max(runtime.ledger.positions(), key=lambda p: p.available)
    order = {
        "order_id": f"LIVE-{time.time_ns()}",
        "channel": "web",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [{"line_id": "1", "sku": pos.sku, "qty": 2}],
    }
    placed = client.post("/v1/orders", json=order)
    assert placed.status_code == 201, placed.text
    node = placed.json()["allocations"][0]["node_id"]
    before = next(p for p in runtime.ledger.positions([(node, pos.sku)]))
    rejections = _scored(runtime, node, pos.sku, "rejections_7d")
    _within_5s(runtime, node, pos.sku, {"reserved": before.reserved})
    assert before.reserved >= 2

    r = client.post(
        f"/v1/orders/{order['order_id']}/rejections",
        json={"node_id": node, "line_ids": ["1"], "reason": "not_in_stock"},
    )
    assert r.status_code == 200, r.text
    after = next(p for p in runtime.ledger.positions([(node, pos.sku)]))
    _within_5s(
        runtime,
        node,
        pos.sku,
        {
            "rejections_7d": rejections + 1,
            "reserved": after.reserved,
            "available": after.available,
            "on_hand": after.on_hand,
        },
    )
    # the next decision explains what it read about the stock it chose
    again = client.post("/v1/route", json={**order, "order_id": f"LIVE-{time.time_ns()}"})
    assert again.status_code == 200, again.text
    answer = again.json()
    assert answer["features_as_of"] is not None
    for row in answer["stock_features"]:
        for feature in ("on_hand", "available", "reserved", "rejections_7d"):
            assert row[feature] == _scored(runtime, row["node_id"], row["sku"], feature)


def test_a_posted_count_changes_the_on_hand_the_next_decision_reads(
    live_client: tuple[TestClient, Runtime],
) -> None:
    client, runtime = live_client
    pos = max(runtime.ledger.positions(), key=lambda p: p.on_hand)
    target = pos.on_hand + 37
    event = {
        "event_id": f"live-{time.time_ns()}",
        "event_time": datetime.now(UTC).isoformat(),
        "node_id": pos.node_id,
        "sku": pos.sku,
        "kind": "count",
        "qty": target,
    }
    posted = time.monotonic()
    r = client.post("/v1/inventory/adjustments", json={"events": [event]})
    assert r.status_code == 200, r.text

    def scored_on_hand() -> float:
        snap = runtime.snapshot
        assert snap is not None
        return float(snap.gather([pos.node_id], [pos.sku], [None])["on_hand"][0])

    while scored_on_hand() != target and time.monotonic() - posted < 5.0:
        time.sleep(0.1)
    assert scored_on_hand() == target, "the on-hand feature did not follow the ledger within 5 s"
    assert _online_on_hand(runtime, pos.node_id, pos.sku)[0] == target  # through Feast
    row = runtime.snapshot.node_sku_row(pos.node_id, pos.sku)  # type: ignore[union-attr]
    assert row is not None and row["days_since_count"] == 0
