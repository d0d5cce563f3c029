"""A moved champion alias is served without a restart, and answers name the new version."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def test_new_champion_is_picked_up_without_restart(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_home
    shutil.copy(settings.home / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = settings.model_copy(
        update={"mlflow_tracking_uri": uri, "database_url": f"sqlite:///{tmp_path / 'l.db'}"}
    )
    app = create_app(local, background=False)
    with TestClient(app) as client:
        runtime = app.state.runtime
        client.headers["X-API-Key"] = runtime.keys.create({"route"})
        sku = client.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
        order = {
            "order_id": "M",
            "destination": {"postal_code": "30301"},
            "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
        }
        assert client.post("/v1/route", json=order).json()["models"][settings.delivery_model] == "1"

        # a reviewer releases "version 2" (the same artifact registered again) by moving the alias
        # (MLflow resolves a models:/ source through the process-wide tracking URI)
        mlflow.set_tracking_uri(uri)
        mc = MlflowClient(tracking_uri=uri, registry_uri=uri)
        v1 = mc.get_model_version(settings.delivery_model, "1")
        v2 = mc.create_model_version(settings.delivery_model, v1.source, run_id=v1.run_id)
        mc.set_registered_model_alias(settings.delivery_model, "champion", v2.version)

        assert runtime.models.refresh() == ["delivery"]  # what the background loop calls
        models = {m["name"]: m for m in client.get("/v1/models").json()}
        assert models[settings.delivery_model]["version"] == str(v2.version)
        answer = client.post("/v1/route", json=order).json()
        assert answer["models"][settings.delivery_model] == str(v2.version)
        assert answer["models"][settings.stockout_model] == "1"
        assert runtime.models.refresh() == []  # nothing moved: nothing reloaded
