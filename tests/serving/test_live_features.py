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
    later = datetime.now(UTC) + timedelta(hours=80)

    def clock() -> datetime:
        return later

    as_built = Runtime(own_demo.model_copy(update={"bring_forward_stale_features": False}))
    as_built.start(background=False)
    try:
        reasons = as_built.degraded_reasons(later)
        assert any("features are" in r for r in reasons), reasons
    finally:
        as_built.stop()

    runtime = Runtime(own_demo, clock=clock)
    runtime.start(background=False)
    try:
        assert runtime.degraded_reasons(later) == []
        stats = runtime.live.stats
        assert stats.brought_forward_from_hours is not None
        assert stats.brought_forward_from_hours > own_demo.feature_staleness_hours
        pos = runtime.ledger.positions()[0]
        on_hand, stamp = _online_on_hand(runtime, pos.node_id, pos.sku)
        assert on_hand == pos.on_hand and stamp == int(later.timestamp())
    finally:
        runtime.stop()


@pytest.fixture
def live_client(own_demo: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    app = create_app(own_demo.model_copy(update={"live_features_seconds": 0.5}), background=True)
    with TestClient(app) as client:
        runtime = app.state.runtime
        deadline = time.monotonic() + 300  # the server loads models and features on a thread
        while runtime.starting and time.monotonic() < deadline:
            time.sleep(0.1)
        client.headers["X-API-Key"] = runtime.keys.create({"inventory", "route"})
        yield client, runtime


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
