"""Training and serving read the model names and alias from one settings object: set custom
ones and the models are registered under them and served from them, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from features.store import open_feature_store
from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings
from training.config import TrainingConfig
from training.pipeline import train_all
from training.registry import configure

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_models_are_registered_and_served_under_custom_names(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    demo, _ = demo_home
    settings = demo.model_copy(
        update={
            "stockout_model": "acme-stockout",
            "delivery_model": "acme-delivery",
            "model_alias": "live",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "database_url": f"sqlite:///{tmp_path / 'ledger.db'}",
        }
    )
    client = configure(settings.tracking_uri, tmp_path / "artifacts")
    config = TrainingConfig.from_settings(settings, max_rows=5_000, num_boost_round=60)
    results = train_all(open_feature_store(settings), settings.raw_dir, client, config=config)

    assert [r.name for r in results] == ["acme-stockout", "acme-delivery"]
    registry = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    for r in results:
        assert r.version is not None and r.version.aliases == ("live",)
        assert str(registry.get_model_version_by_alias(r.name, "live").version) == "1"
    assert not registry.search_model_versions(f"name = '{demo.stockout_model}'")

    app = create_app(settings, background=False)
    with TestClient(app) as http:
        key = app.state.runtime.keys.create({"route"}, "custom names")
        http.headers["Authorization"] = f"Bearer {key}"
        served = {m["name"]: m for m in http.get("/v1/models").json()}
        assert set(served) == {"acme-stockout", "acme-delivery"}
        assert all(m["alias"] == "live" and m["status"] == "loaded" for m in served.values())
        sku = http.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
        plan = http.post(
            "/v1/route",
            json={
                "order_id": "CUSTOM-1",
                "destination": {"country": "US", "postal_code": "10001"},
                "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
            },
        )
        assert plan.status_code == 200, plan.text
        body = plan.json()
        assert body["mode"] == "predictive" and body["degraded"] is False, body
        assert body["models"] == {"acme-stockout": "1", "acme-delivery": "1"}
