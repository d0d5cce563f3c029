"""Missing models or stale features never fail an order: cost mode, degraded, counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def _route(settings: Settings) -> tuple[dict, str]:
    app = create_app(settings, background=False)
    with TestClient(app) as client:
        client.headers["X-API-Key"] = app.state.runtime.keys.create({"route"})
        sku = client.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
        order = {
            "order_id": "D",
            "destination": {"postal_code": "10001"},
            "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
        }
        r = client.post("/v1/route", json=order)
        assert r.status_code == 200, r.text
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        return r.json(), client.get("/metrics").text


def test_missing_models_route_in_cost_mode(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_home
    empty = settings.model_copy(
        update={
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'empty.db'}",
            "database_url": f"sqlite:///{tmp_path / 'a.db'}",
        }
    )
    from serving.metrics import REGISTRY

    before = REGISTRY.get_sample_value("routecast_degraded_total") or 0.0
    answer, metrics = _route(empty)
    assert answer["degraded"] is True and answer["mode"] == "cost" and answer["shippable"] is True
    assert any("champion" in r for r in answer["degraded_reasons"])
    assert answer["models"] == {}
    assert REGISTRY.get_sample_value("routecast_degraded_total") == before + 1
    assert "routecast_degraded_total" in metrics


def test_stale_features_route_in_cost_mode(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_home
    stale = settings.model_copy(
        update={
            "feature_staleness_hours": 0.001,
            "database_url": f"sqlite:///{tmp_path / 'b.db'}",
            # an operator who turns the bring-forward off keeps the old behaviour
            "bring_forward_stale_features": False,
        }
    )
    answer, _ = _route(stale)
    assert answer["degraded"] is True and answer["mode"] == "cost"
    assert any("features are" in r and "materialize" in r for r in answer["degraded_reasons"])
