"""FreshRetailNet stockout-risk evaluation on stores the model never saw.

Each data side (train, test) gets its own Feast repository built only from its own rows,
as two cities would. When ``--train`` and ``--test`` are the same file (only city 1 is
published in this layout), its stores are split into two disjoint halves by a seeded
shuffle: the honest stand-in for "another city". Within the training side, whole series
(store × product) are held out: some for early stopping, others for calibration, so the
calibrator only sees scores of rows the booster never trained on.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.adapters import FreshRetailTables, load_freshretail
from features.realdata import fresh_tables, fresh_views
from features.realdata import store as feast_store
from training.calibration import ProbabilityCalibrator
from training.metrics import classification_metrics
from training.models import StockoutRiskModel
from training.realdata.fresh_labels import CALENDAR, next_day_rows

PROJECT = "routecast_fresh_eval"
FEATURES = (
    *fresh_views.SERIES_FEATURES,
    *fresh_views.NODE_FEATURES,
    *fresh_views.SKU_FEATURES,
    *fresh_views.PROFILE_FEATURES,
    *CALENDAR,
    *fresh_views.HOUR_FEATURES,
)
METRICS = ("auc", "pr_auc", "brier", "ece")


@dataclass
class FreshSettings:
    """Choices made on the training side only."""

    seed: int = 7
    valid_share: float = 0.15
    calib_share: float = 0.25
    num_boost_round: int = 800
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "learning_rate": 0.03,
            "num_leaves": 31,
            "min_data_in_leaf": 100,
            # Column subsampling: the new restock and profile features overlap with the
            # stock-out shares; chosen on held-out training series (mean AUC gap over
            # persistence 0.059 → 0.064 across two series splits).
            "feature_fraction": 0.7,
            "num_threads": 1,
        }
    )


def split_stores(nodes: list[str], seed: int) -> tuple[list[str], list[str]]:
    """Disjoint halves of the stores (seeded), the first half for training."""
    order = np.random.default_rng(seed).permutation(sorted(nodes))
    half = len(order) // 2
    if half == 0:
        raise ValueError("need at least two stores to split one file into train and test")
    return sorted(order[:half].tolist()), sorted(order[half:].tolist())


def side_frame(hourly: pd.DataFrame, work_dir: Path) -> pd.DataFrame:
    """One side's Feast repo and its point-in-time training frame (features + label)."""
    feast_store.write_tables(work_dir, fresh_tables.build_tables(hourly))
    fs = feast_store.open_store(work_dir, PROJECT)
    feast_store.apply(fs, fresh_views.definitions(work_dir / feast_store.TABLES_DIR))
    rows = next_day_rows(hourly)
    entities = rows.drop(columns=["label", "next_so_share", "day"])
    frame = feast_store.historical(fs, entities, fresh_views.SERVICE, chunk_rows=8000)
    frame["label"] = rows["label"].to_numpy()
    frame["day"] = rows["day"].to_numpy()
    return frame


def _series_groups(frame: pd.DataFrame, settings: FreshSettings) -> np.ndarray:
    """0 = fit, 1 = early stopping, 2 = calibration; whole series at a time."""
    series = (frame["node_id"] + "|" + frame["sku"]).to_numpy()
    unique = np.unique(series)
    draw = np.random.default_rng(settings.seed).random(len(unique))
    group = np.where(
        draw < settings.calib_share,
        2,
        np.where(draw < settings.calib_share + settings.valid_share, 1, 0),
    )
    return np.asarray(pd.Series(group, index=unique).reindex(series).to_numpy(), dtype=int)


class FreshStockoutModel:
    """LightGBM classifier plus a calibrator fitted on series it did not train on."""

    def __init__(self, settings: FreshSettings | None = None) -> None:
        self.settings = settings or FreshSettings()

    def fit(self, frame: pd.DataFrame) -> FreshStockoutModel:
        s = self.settings
        group = _series_groups(frame, s)
        fit, valid, calib = (frame[group == g] for g in (0, 1, 2))
        self.booster_ = StockoutRiskModel(
            FEATURES,
            monotone=fresh_views.MONOTONE,
            num_boost_round=s.num_boost_round,
            params=s.params,
        ).fit(fit, fit["label"].to_numpy(), valid, valid["label"].to_numpy())
        raw = self.booster_.predict_proba(calib)
        self.calibrator_ = ProbabilityCalibrator("auto").fit(raw, calib["label"].to_numpy())
        self.calibration_ = classification_metrics(
            calib["label"].to_numpy(), self.calibrator_.predict(raw)
        )
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrator_.predict(self.booster_.predict_proba(frame))


def _pick(metrics: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] for k in METRICS}


def evaluate_freshretail(
    train_file: Path | str,
    test_file: Path | str,
    *,
    work_dir: Path | None = None,
    settings: FreshSettings | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation on two FreshRetailNet files and return the report (JSON-ready)."""
    started = time.perf_counter()
    same = Path(train_file).resolve() == Path(test_file).resolve()
    train_tables = load_freshretail(train_file)
    test_tables = None if same else load_freshretail(test_file)
    return evaluate_stockout(
        train_tables, test_tables, work_dir=work_dir, settings=settings, started=started
    )


def evaluate_stockout(
    train_tables: FreshRetailTables,
    test_tables: FreshRetailTables | None = None,
    *,
    work_dir: Path | None = None,
    settings: FreshSettings | None = None,
    started: float | None = None,
) -> dict[str, Any]:
    """The evaluation on hourly availability tables (adapter or import).

    Without ``test_tables`` the stores of ``train_tables`` are split into disjoint halves.
    """
    started = time.perf_counter() if started is None else started
    settings = settings or FreshSettings()
    same = test_tables is None
    if test_tables is None:
        train_nodes, test_nodes = split_stores(train_tables.nodes, settings.seed)
        train_hourly = train_tables.hourly[train_tables.hourly["node_id"].isin(train_nodes)]
        test_hourly = train_tables.hourly[train_tables.hourly["node_id"].isin(test_nodes)]
    else:
        train_hourly = train_tables.hourly
        test_hourly = test_tables.hourly
    with tempfile.TemporaryDirectory(prefix="routecast-fresh-") as tmp:
        root = work_dir or Path(tmp)
        train = side_frame(train_hourly.reset_index(drop=True), root / "train")
        test = side_frame(test_hourly.reset_index(drop=True), root / "test")
    model = FreshStockoutModel(settings).fit(train)
    y = test["label"].to_numpy()
    return {
        "n_train": len(train),
        "n_test": len(test),
        **_pick(classification_metrics(y, model.predict_proba(test))),
        "baselines": {"persistence": _pick(classification_metrics(y, test["so_share"].to_numpy()))},
        "split": "stores" if same else "files",
        "train_stores": sorted(train["node_id"].unique().tolist()),
        "test_stores": sorted(test["node_id"].unique().tolist()),
        "positive_rate_test": float(np.mean(y)),
        "calibration": {
            "method": model.calibrator_.method_,
            **{k: v for k, v in _pick(model.calibration_).items()},
        },
        "boost_rounds": model.booster_.best_iteration_,
        "seconds": round(time.perf_counter() - started, 1),
    }
