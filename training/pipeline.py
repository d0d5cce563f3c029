"""Training jobs: feature store → LightGBM + baselines → metrics → MLflow registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from mlflow import MlflowClient

from features import catalog
from training import baselines, plots
from training.config import TrainingConfig
from training.datasets import Split, build_training_set, delivery_entities, stockout_entities
from training.metrics import (
    classification_by_group,
    classification_metrics,
    coverage_by_group,
    quantile_metrics,
    quantile_reliability,
    reliability_bins,
)
from training.models import DeliveryQuantileModel, FitBackend, StockoutRiskModel, feature_matrix
from training.pyfunc import DeliveryDaysPyfunc, StockoutRiskPyfunc
from training.registry import (
    RegisteredVersion,
    breakdown_table,
    code_revision,
    log_and_register,
)

#: Lanes with fewer test shipments are pooled into "other" in the review's coverage table.
MIN_LANE_ROWS = 30
#: The delivery model's P90 rule in production: a P90 booster conformalized (CQR) with one
#: factor per weekday × node type, pooled for groups under 300 rows. The features carry no
#: lane code, and the weekday decides whether a parcel crosses a weekend; chosen on the
#: simulated tuning world (docs/evaluation.md, "Production delivery band").
DELIVERY_BAND: dict[str, Any] = {"band_on": "p90", "band_groups": ("weekday", "node_type_code")}
#: Nodes with fewer test allocations are pooled into "other" in the review's per-node table.
MIN_NODE_ROWS = 30


@dataclass
class TrainResult:
    """What one training job produced: metrics beside baselines and the registered version."""

    name: str
    metrics: dict[str, dict[str, float]]
    version: RegisteredVersion | None = None
    n_rows: dict[str, int] = field(default_factory=dict)


def _tags(
    split: Split,
    service: str,
    features: tuple[str, ...],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    start, end = split.window
    return {
        "data_window_start": start,
        "data_window_end": end,
        "feature_service": service,
        "features": ",".join(features),
        "code_revision": code_revision(),
        **(extra or {}),
    }


def _sizes(split: Split) -> dict[str, int]:
    return {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}


def training_split(kind: str, store: FeatureStore, raw_dir: Path, *, max_rows: int | None) -> Split:
    """The time-split training set of ``stockout`` or ``delivery``, through its feature
    service; shared by training (any backend) and the promotion gate."""
    entities, service = {
        "stockout": (stockout_entities, catalog.SERVICE_STOCKOUT),
        "delivery": (delivery_entities, catalog.SERVICE_DELIVERY),
    }[kind]
    return build_training_set(store, entities(raw_dir), service, max_rows=max_rows)


def evaluate_stockout(
    split: Split,
    model: StockoutRiskModel,
    client: MlflowClient | None,
    *,
    config: TrainingConfig | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Score a fitted classifier beside the baselines on the test window, then register it.

    Separate from fitting so every trainer (single machine, Dask) is judged and logged alike.
    """
    config = config or TrainingConfig()
    name = config.stockout_model
    features = catalog.STOCKOUT_FEATURES
    y_tr, y_te = (s["label"].to_numpy(int) for s in (split.train, split.test))
    rule = baselines.OnHandRule().fit(split.train, y_tr)
    logit = baselines.LogisticBaseline(features).fit(split.train, y_tr)
    probs = {
        "model": model.predict_proba(split.test),
        "baseline_on_hand_rule": rule.predict_proba(split.test),
        "baseline_logistic": logit.predict_proba(split.test),
    }
    metrics = {k: classification_metrics(y_te, p) for k, p in probs.items()}
    result = TrainResult(name=name, metrics=metrics, n_rows=_sizes(split))
    if client is not None:
        example = split.test.loc[: min(4, len(split.test) - 1), list(features)].astype(float)
        nodes = classification_by_group(
            y_te,
            probs["model"],
            split.test["node_id"].to_numpy(),
            MIN_NODE_ROWS,
            baselines={k: p for k, p in probs.items() if k != "model"},
        )
        result.version = log_and_register(
            client,
            name=name,
            champion_alias=config.champion_alias,
            challenger_alias=config.challenger_alias,
            python_model=StockoutRiskPyfunc(model),
            input_example=example,
            output_example=pd.DataFrame({"p_stockout": model.predict_proba(example)}),
            metrics=metrics,
            params={"num_boost_round": model.best_iteration_, **_sizes(split)},
            tags=_tags(split, catalog.SERVICE_STOCKOUT, features, extra_tags),
            figures={
                "reliability.png": plots.reliability(y_te, probs),
                "risk_by_node.png": plots.calibration_by_group(nodes),
                "importance.png": plots.importance(model.feature_importance()),
            },
            sections={
                **{
                    f"Reliability on the test window ({label})": breakdown_table(
                        reliability_bins(y_te, p)
                    )
                    for label, p in probs.items()
                },
                f"Metrics by node (under {MIN_NODE_ROWS} test allocations pooled as other; "
                "auc_baseline_*: the baselines' AUC on the same rows)": breakdown_table(nodes),
            },
        )
    return result


def evaluate_delivery(
    split: Split,
    model: DeliveryQuantileModel,
    client: MlflowClient | None,
    *,
    config: TrainingConfig | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> TrainResult:
    """Score fitted quantile boosters beside the baselines on the test window, then register.

    Separate from fitting so every trainer (single machine, Dask) is judged and logged alike.
    """
    config = config or TrainingConfig()
    name = config.delivery_model
    features = catalog.DELIVERY_FEATURES
    y_tr, y_te = (s["label"].to_numpy(float) for s in (split.train, split.test))
    p50, p90 = model.predict_quantiles(split.test)
    lane = baselines.LaneMedian().fit(split.train, y_tr)
    dist = baselines.DistanceRule().fit(split.train, y_tr)
    promised = split.test["promised_days"].to_numpy(float)
    quantiles = {
        "model": (p50, p90),
        "baseline_lane_median": (lane.predict(split.test), lane.predict_p90(split.test)),
        "baseline_distance_rule": (dist.predict(split.test), dist.predict_p90(split.test)),
    }
    metrics = {k: quantile_metrics(y_te, *q) for k, q in quantiles.items()}
    metrics["baseline_promised_date"] = quantile_metrics(y_te, promised, promised)
    result = TrainResult(name=name, metrics=metrics, n_rows=_sizes(split))
    if client is not None:
        example = split.test.loc[: min(4, len(split.test) - 1), list(features)].astype(float)
        e50, e90 = model.predict_quantiles(example)
        lanes = coverage_by_group(y_te, p50, p90, lane_groups(split.test), MIN_LANE_ROWS)
        band_groups = model.groups(feature_matrix(split.test, model.feature_names_))
        result.version = log_and_register(
            client,
            name=name,
            champion_alias=config.champion_alias,
            challenger_alias=config.challenger_alias,
            python_model=DeliveryDaysPyfunc(model),
            input_example=example,
            output_example=pd.DataFrame({"days_p50": e50, "days_p90": e90}),
            metrics=metrics,
            params={
                "best_iteration": model.best_iteration_,
                "p90_band_pooled": model.band_.pooled_.correction_,
                **_sizes(split),
            },
            tags=_tags(split, catalog.SERVICE_DELIVERY, features, extra_tags),
            figures={
                "residuals.png": plots.residuals(y_te, p50, p90),
                "coverage_by_lane.png": plots.coverage_by_group(lanes),
                "reliability.png": plots.quantile_reliability_diagram(y_te, quantiles),
                "importance.png": plots.importance(model.feature_importance()),
            },
            sections={
                f"Coverage by lane group (node → region; under {MIN_LANE_ROWS} "
                "test shipments pooled as other)": breakdown_table(lanes),
                "Coverage by band group (the P90's conformal groups: "
                f"{' > '.join(model.band_groups) or 'one pooled band'})": breakdown_table(
                    coverage_by_group(y_te, p50, p90, band_groups, MIN_LANE_ROWS)
                ),
                "Quantile reliability by decile of the predicted P50 (model)": breakdown_table(
                    quantile_reliability(y_te, p50, p90)
                ),
            },
        )
    return result


def _backend_tags(backend: FitBackend | None) -> dict[str, str]:
    tags = getattr(backend, "tags", None)
    return dict(tags()) if callable(tags) else {}


def train_model(
    kind: str,
    store: FeatureStore,
    raw_dir: Path,
    client: MlflowClient | None,
    *,
    config: TrainingConfig | None = None,
    backend: FitBackend | None = None,
) -> TrainResult:
    """Fit one model (``stockout`` or ``delivery``) on its training set, then judge and
    register it under the configured name. ``backend`` grows the trees (default: locally)."""
    config = config or TrainingConfig()
    specs: dict[str, tuple[type, tuple[str, ...], Mapping[str, int]]] = {
        "stockout": (int, catalog.STOCKOUT_FEATURES, catalog.STOCKOUT_MONOTONE),
        "delivery": (float, catalog.DELIVERY_FEATURES, catalog.DELIVERY_MONOTONE),
    }
    if kind not in specs:
        raise ValueError(f"model kind must be stockout or delivery, got {kind!r}")
    dtype, features, monotone = specs[kind]
    data = training_split(kind, store, raw_dir, max_rows=config.max_rows)
    y_tr, y_va = (s["label"].to_numpy(dtype) for s in (data.train, data.valid))
    estimator = StockoutRiskModel if kind == "stockout" else DeliveryQuantileModel
    model = estimator(
        features,
        monotone=monotone,
        num_boost_round=config.num_boost_round,
        num_threads=config.num_threads,
        backend=backend,
        **({} if kind == "stockout" else DELIVERY_BAND),
    ).fit(data.train, y_tr, data.valid, y_va)
    tags = _backend_tags(backend)
    if isinstance(model, StockoutRiskModel):
        return evaluate_stockout(data, model, client, config=config, extra_tags=tags)
    return evaluate_delivery(data, model, client, config=config, extra_tags=tags)


def train_stockout(
    store: FeatureStore, raw_dir: Path, client: MlflowClient | None, **kw: Any
) -> TrainResult:
    """Rejection-risk classifier beside the on-hand rule and a logistic regression."""
    return train_model("stockout", store, raw_dir, client, **kw)


def train_delivery(
    store: FeatureStore, raw_dir: Path, client: MlflowClient | None, **kw: Any
) -> TrainResult:
    """P50/P90 delivery-days boosters beside the lane median and a distance rule."""
    return train_model("delivery", store, raw_dir, client, **kw)


def lane_groups(frame: pd.DataFrame) -> np.ndarray:
    """A lane: the node that ships and the destination region."""
    return (frame["node_id"].astype(str) + " → " + frame["dest_region"].astype(str)).to_numpy()


def train_all(
    store: FeatureStore,
    raw_dir: Path,
    client: MlflowClient | None,
    *,
    config: TrainingConfig | None = None,
    on_step: Callable[[str], None] | None = None,
    backend: FitBackend | None = None,
) -> list[TrainResult]:
    """Both models, registered under the configured names; ``backend`` grows the trees."""
    results = []
    for label, kind in (("stockout risk", "stockout"), ("delivery days", "delivery")):
        if on_step:
            on_step(label)
        results.append(train_model(kind, store, raw_dir, client, config=config, backend=backend))
    return results


def summary_rows(results: list[TrainResult]) -> list[tuple[str, str, str, float]]:
    """(model, candidate, metric, value) rows for a printed table."""
    rows = []
    for r in results:
        for cand, values in r.metrics.items():
            for key, val in values.items():
                if key != "n" and not np.isnan(val):
                    rows.append((r.name, cand, key, float(val)))
    return rows
