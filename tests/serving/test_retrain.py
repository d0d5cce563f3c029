"""``routecast retrain`` end to end: what the API was told (rejections, deliveries) becomes
labels of the next training set, challengers are registered and gated, steps are timed."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.store import open_feature_store
from serving.cli import app as cli
from serving.demo import DemoReport
from serving.settings import Settings
from tests.support.apps import api_client
from training.pipeline import training_split
from training.registry import configure

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

STEPS = [
    "export ledger history",
    "merge history",
    "compute feature tables",
    "feast apply + materialize",
    "train challengers",
    "promise review",
    "promotion gate",
]


def _count(client: Any, node: str, sku: str, qty: int) -> None:
    event = {
        "event_id": f"cnt-{uuid.uuid4().hex}",
        "event_time": datetime.now(UTC).isoformat(),
        "node_id": node,
        "sku": sku,
        "kind": "count",
        "qty": qty,
    }
    r = client.post("/v1/inventory/adjustments", json={"events": [event]})
    assert r.status_code == 200, r.text


def _keys(frame: pd.DataFrame) -> set[tuple[str, str, str]]:
    ts = pd.to_datetime(frame["event_timestamp"], utc=True).dt.floor("s").astype(str)
    return set(zip(frame["node_id"].astype(str), frame["sku"].astype(str), ts, strict=True))


def test_api_operations_become_labels_of_the_next_training_set(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    base, _ = demo_home
    home = tmp_path / "home"
    shutil.copytree(base.home, home, ignore=shutil.ignore_patterns("ledger.db*"))
    url = f"sqlite:///{home / 'ledger.db'}"
    settings = base.model_copy(update={"home": home, "database_url": url})
    raw_before = {
        t: len(pd.read_parquet(settings.raw_dir / f"{t}.parquet"))
        for t in ("allocations", "shipments")
    }

    with api_client(settings, url) as (client, runtime):
        sku = sorted(runtime.skus)[0]
        first, second = sorted(n.node_id for n in runtime.nodes if n.enabled)[:2]
        for lv in client.get(f"/v1/inventory/{sku}").json()["nodes"]:
            _count(client, lv["node_id"], sku, 0)
        _count(client, first, sku, 10)
        _count(client, second, sku, 10)
        orders = []
        for _ in range(6):
            body = {
                "order_id": f"R-{uuid.uuid4().hex[:10]}",
                "channel": "web",
                "destination": {"country": "US", "postal_code": "60601"},
                "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
            }
            r = client.post("/v1/orders", json=body)
            assert r.status_code == 201, r.text
            orders.append((body["order_id"], r.json()["allocations"][0]["node_id"]))
        rejected = orders[:2]
        for oid, node in rejected:
            r = client.post(
                f"/v1/orders/{oid}/rejections",
                json={"node_id": node, "line_ids": ["1"], "reason": "not_in_stock"},
            )
            assert r.status_code == 200 and r.json()["rerouted"], r.text
        delivered = []
        for oid, _ in orders:
            shipped = client.post(f"/v1/orders/{oid}/shipments", json={"carrier": "UPS"})
            assert shipped.status_code == 200, shipped.text
            parcel = shipped.json()["shipments"][0]
            at = datetime.fromisoformat(parcel["shipped_at"]) + timedelta(minutes=5)
            r = client.post(
                f"/v1/orders/{oid}/deliveries",
                json={"deliveries": [{"event_id": f"dl-{oid}", "delivered_at": at.isoformat()}]},
            )
            assert r.status_code == 200, r.text
            delivered.append(parcel["shipment_id"])
        allocations = {
            (oid, a["allocation_id"], a["status"])
            for oid, _ in orders
            for a in client.get(f"/v1/orders/{oid}").json()["allocations"]
        }

    as_of = datetime.now(UTC) + timedelta(days=1)
    env = {"ROUTECAST_HOME": str(home), "ROUTECAST_DATABASE_URL": url, "ROUTECAST_SCALE": "small"}
    result = CliRunner().invoke(cli, ["retrain", "--as-of", as_of.isoformat(), "--json"], env=env)
    assert result.exit_code == 0, result.output
    out = result.stdout
    report = json.loads(out[out.index("{") :])
    assert "step timings:" in result.output and "total" in result.output
    assert list(report["steps"]) == STEPS and all(v >= 0 for v in report["steps"].values())

    # 6 orders: 2 rejected allocations + 6 shipped ones; 6 delivered shipments
    assert len(allocations) == 8
    assert report["exported"]["allocations"] == 8 and report["exported"]["shipments"] == 6
    assert report["merged"]["allocations"] == raw_before["allocations"] + 8
    assert report["merged"]["shipments"] == raw_before["shipments"] + 6

    merged = settings.data_dir / "merged"
    alloc = pd.read_parquet(merged / "allocations.parquet")
    ours = alloc[alloc["allocation_id"].str.startswith("ledger-")]
    assert len(ours) == 8
    got = set(zip(ours["order_id"], ours["node_id"], ours["rejected"], strict=True))
    assert {(o, n, True) for o, n in rejected} <= got
    assert sum(ours["rejected"]) == 2 and set(ours.loc[ours["rejected"], "reason"]) == {
        "not_in_stock"
    }
    ships = pd.read_parquet(merged / "shipments.parquet")
    assert set(delivered) <= set(ships["shipment_id"])

    # the point-in-time training sets contain them, with their labels
    store = open_feature_store(settings)
    stock = training_split("stockout", store, merged, max_rows=None)
    frame = pd.concat([stock.train, stock.valid, stock.test], ignore_index=True)
    labelled = frame[frame["label"] == 1]
    assert _keys(ours[ours["rejected"]]) <= _keys(labelled)
    assert _keys(ours) <= _keys(frame)
    deliv = training_split("delivery", store, merged, max_rows=None)
    dframe = pd.concat([deliv.train, deliv.valid, deliv.test], ignore_index=True)
    mine = ships[ships["shipment_id"].isin(delivered)]
    assert len(dframe) >= raw_before["shipments"]
    stamps = set(pd.to_datetime(dframe["event_timestamp"], utc=True).dt.floor("s"))
    assert set(pd.to_datetime(mine["event_timestamp"], utc=True).dt.floor("s")) <= stamps

    # challengers registered on that data, gated, with the promise review in their description
    assert set(report["challengers"]) == {settings.stockout_model, settings.delivery_model}
    assert set(report["gate"]) == {settings.stockout_model, settings.delivery_model}
    assert report["promises"]["overall"]["deliveries"] == 6
    client_ml = configure(settings.tracking_uri, settings.artifact_dir)
    for name, version in report["challengers"].items():
        text = client_ml.get_model_version(name, version).description
        assert "## Promises kept" in text and "6 confirmed shipments" in text
