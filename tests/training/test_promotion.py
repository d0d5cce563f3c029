"""The promotion gate refuses a deliberately worse challenger and accepts a better one."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features import catalog
from features.store import open_feature_store
from serving.demo import DemoReport
from serving.settings import Settings
from training.config import TrainingConfig
from training.datasets import build_training_set, stockout_entities
from training.metrics import classification_metrics
from training.models import StockoutRiskModel
from training.pipeline import train_stockout
from training.promotion import promote
from training.pyfunc import StockoutRiskPyfunc
from training.registry import configure, log_and_register

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


def _register_shuffled(client: MlflowClient, store: object, raw: Path, name: str) -> str:
    split = build_training_set(
        store, stockout_entities(raw), catalog.SERVICE_STOCKOUT, max_rows=20_000
    )  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    y = rng.permutation(split.train["label"].to_numpy(int))
    model = StockoutRiskModel(catalog.STOCKOUT_FEATURES, num_boost_round=30).fit(split.train, y)
    example = split.test.loc[:3, list(catalog.STOCKOUT_FEATURES)].astype(float)
    version = log_and_register(
        client,
        name=name,
        python_model=StockoutRiskPyfunc(model),
        input_example=example,
        output_example=pd.DataFrame({"p_stockout": model.predict_proba(example)}),
        metrics={
            "model": classification_metrics(
                split.test["label"].to_numpy(int), model.predict_proba(split.test)
            )
        },
        params={"labels": "shuffled"},
        tags={"purpose": "gate test"},
        figures={},
    )
    return version.version


def test_gate_refuses_worse_and_accepts_better(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_home
    shutil.copy(settings.home / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = configure(uri, settings.artifact_dir)
    store = open_feature_store(settings)
    name = settings.stockout_model
    config = TrainingConfig.from_settings(settings, max_rows=20_000)

    worse = _register_shuffled(client, store, settings.raw_dir, name)
    assert str(client.get_model_version_by_alias(name, "challenger").version) == worse
    refused = promote(client, store, settings.raw_dir, kind="stockout", config=config)
    assert not refused.promoted and refused.verdict == "fail"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert client.get_model_version(name, worse).tags["gate_verdict"] == "fail"
    assert "auc" in refused.explain()

    # A bad release slipped out as champion; a properly trained challenger must replace it.
    client.set_registered_model_alias(name, "champion", worse)
    better = train_stockout(
        store,
        settings.raw_dir,
        client,
        config=TrainingConfig.from_settings(settings, max_rows=20_000, num_boost_round=150),
    )
    assert better.version is not None and better.version.aliases == ("challenger",)
    accepted = promote(client, store, settings.raw_dir, kind="stockout", config=config)
    assert accepted.promoted, accepted.explain()
    assert (
        str(client.get_model_version_by_alias(name, "champion").version) == better.version.version
    )
    assert accepted.challenger_metrics["auc"] > accepted.champion_metrics["auc"]
