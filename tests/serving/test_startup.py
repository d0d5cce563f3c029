"""Start-up: the server loads models and features in the background, says it is starting until
they are in, then answers predictively; champions come from the local cache only while the
registry's alias still points at them."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.auth import SCOPES
from serving.demo import DemoReport
from serving.model_store import ModelStore
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def _order(client: TestClient) -> dict[str, Any]:
    sku = client.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
    return {
        "order_id": "S-1",
        "destination": {"postal_code": "30301"},
        "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
    }


def _local(settings: Settings, tmp_path: Path) -> Settings:
    shutil.copy(settings.home / "mlflow.db", tmp_path / "mlflow.db")
    return settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        }
    )


def test_server_is_starting_until_loaded_then_ready_and_predictive(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _local(demo_home[0], tmp_path)
    app = create_app(settings, background=True)
    runtime = app.state.runtime
    release = threading.Event()
    load = runtime._load

    def held_load(step: Any, **kw: Any) -> None:
        release.wait(120)
        load(step, **kw)

    monkeypatch.setattr(runtime, "_load", held_load)
    with TestClient(app) as client:
        client.headers["Authorization"] = "Bearer " + runtime.keys.create(set(SCOPES), "t")
        r = client.get("/readyz")
        assert r.status_code == 503
        assert any(reason.startswith("starting") for reason in r.json()["reasons"])
        assert client.get("/healthz").status_code == 200
        order = _order(client)
        if runtime.models.ready():  # the cache may hold both champions already
            runtime.models._models.clear()
        early = client.post("/v1/route", json=order).json()
        assert early["degraded"] is True and early["mode"] == "cost", early

        release.set()
        deadline = time.monotonic() + 300
        while (r := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200 and r.json()["status"] == "ready", r.json()
        answer = client.post("/v1/route", json={**order, "order_id": "S-2"}).json()
        assert (answer["mode"], answer["degraded"]) == ("predictive", False), answer
        assert set(runtime.start_steps) >= {"catalogue", "models", "features"}


def test_with_cached_champions_the_server_is_ready_before_asking_mlflow(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _local(demo_home[0], tmp_path)
    names = {"stockout": settings.stockout_model, "delivery": settings.delivery_model}
    cache = settings.home / "cache" / "models"
    ModelStore(settings.tracking_uri, names, settings.model_alias, cache_dir=cache).refresh()
    app = create_app(settings, background=True)
    runtime = app.state.runtime
    asked_while_starting: list[bool] = []
    monkeypatch.setattr(
        runtime, "refresh_models", lambda: asked_while_starting.append(runtime.starting)
    )
    with TestClient(app) as client:
        client.headers["Authorization"] = "Bearer " + runtime.keys.create(set(SCOPES), "t")
        deadline = time.monotonic() + 300
        while (r := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.json()["status"] == "ready", r.json()
        answer = client.post("/v1/route", json=_order(client)).json()
        assert (answer["mode"], answer["degraded"]) == ("predictive", False), answer
    # the registry is asked by the refresher once serving, never on the way to ready
    assert True not in asked_while_starting


def test_cached_champions_load_without_mlflow_only_while_the_alias_points_at_them(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings = _local(demo_home[0], tmp_path)
    names = {"stockout": settings.stockout_model, "delivery": settings.delivery_model}
    cache = tmp_path / "cache"
    first = ModelStore(settings.tracking_uri, names, settings.model_alias, cache_dir=cache)
    assert first.load_cached() == []  # nothing cached yet
    assert sorted(first.refresh()) == ["delivery", "stockout"]  # through MLflow, then cached

    again = ModelStore(settings.tracking_uri, names, settings.model_alias, cache_dir=cache)
    assert sorted(again.load_cached()) == ["delivery", "stockout"]
    assert again.versions() == first.versions()
    for role in names:
        width = len(first.get(role).model.feature_names_)  # type: ignore[union-attr]
        x = np.random.default_rng(0).uniform(0, 5, (50, width))
        a = first.get(role).model.predict_array(x)  # type: ignore[union-attr]
        b = again.get(role).model.predict_array(x)  # type: ignore[union-attr]
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert again.refresh() == []  # the registry agrees: nothing reloaded

    # the alias moves to a version the cache does not hold: the cache is not used for it
    from mlflow import MlflowClient

    mc = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    v1 = mc.get_model_version(settings.delivery_model, "1")
    v2 = mc.create_model_version(settings.delivery_model, v1.source, run_id=v1.run_id)
    mc.set_registered_model_alias(settings.delivery_model, settings.model_alias, v2.version)
    moved = ModelStore(settings.tracking_uri, names, settings.model_alias, cache_dir=cache)
    assert moved.load_cached() == ["stockout"]
    assert moved.refresh() == ["delivery"]
    assert moved.versions()[settings.delivery_model] == str(v2.version)


def test_direct_online_read_matches_feast_on_the_demo_world(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    from features.online import read_online_snapshot
    from features.online_sqlite import read_sqlite_snapshot
    from features.store import open_feature_store
    from serving.runtime import Runtime

    settings = _local(demo_home[0], tmp_path)
    rt = Runtime(settings)
    rt.catalogue.load()
    cat = rt.catalogue
    via_feast = read_online_snapshot(
        open_feature_store(settings), cat.node_ids, cat.node_skus, cat.lanes()
    )
    direct = read_sqlite_snapshot(
        settings.feature_dir.resolve() / "online.db",
        settings.feast_project,
        cat.node_ids,
        cat.node_skus,
        cat.lanes(),
    )
    assert via_feast.node_sku and via_feast.lane
    assert (direct.node, direct.node_sku, direct.lane) == (
        via_feast.node,
        via_feast.node_sku,
        via_feast.lane,
    )
    assert (direct.oldest_event, direct.newest_event) == (
        via_feast.oldest_event,
        via_feast.newest_event,
    )
    rt.engine.dispose()
