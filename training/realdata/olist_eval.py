"""Olist delivery-time evaluation: adapter → Feast (point in time) → quantile model → metrics.

Training rows are train-directory shipments purchased before the cut, test rows
test-directory shipments purchased on or after it. Seller, lane and network history come
from both directories, each outcome stamped when the parcel arrived, so a test order sees
exactly the deliveries completed before its purchase (what production would see), never
its own. The P90 is split-conformal: its correction is fitted on the last weeks before
the cut, held out from a first fit, then applied to a refit on all training rows.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.adapters import OlistTables, load_olist
from features.realdata import olist_tables, olist_views
from features.realdata import store as feast_store
from training.baselines import LaneMedian
from training.calibration import ConformalUpper
from training.metrics import quantile_metrics
from training.models import DeliveryQuantileModel

DEFAULT_CUT = "2018-03-01"
PROJECT = "routecast_olist_eval"
FEATURES = (
    "distance_km",
    "origin_state_code",
    "dest_state_code",
    "weekday",
    "hour",
    "items",
    "weight_kg",
    "price",
    "freight",
    "node_handling_days_mean",
    "node_handling_days_recent",
    "node_handovers",
    "node_delivery_days_p50",
    "node_carrier_days_mean",
    "node_late_rate",
    "node_deliveries",
    "lane_days_p50",
    "lane_days_p90",
    "lane_deliveries",
    "dest_days_p50_30d",
    "dest_carrier_days_p50_30d",
    "dest_deliveries_30d",
    "net_days_p50_14d",
    "net_days_p90_14d",
    "net_carrier_days_p50_14d",
    "net_late_rate_14d",
)
MONOTONE = {"distance_km": 1}
#: The scale the model learns in: delivery days relative to the network's recent median.
LEVEL = "net_days_p50_14d"
Target = Literal["days", "ratio"]


@dataclass
class OlistSettings:
    """Choices tuned on the validation slice of the training period (never on test)."""

    valid_days: int = 42
    target: Target = "ratio"
    conformal: Literal["additive", "multiplicative"] = "multiplicative"
    #: Which quantile the conformal score scales: the P90 booster, or the P50 (a ratio band).
    conformal_base: Literal["p90", "p50"] = "p50"
    #: Recency half-life of the conformal weights in days (None: all held-out rows equal).
    conformal_half_life: float | None = 7.0
    coverage: float = 0.9
    num_boost_round: int = 600
    params: dict[str, Any] = field(
        default_factory=lambda: {
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 60,
            "num_threads": 1,
        }
    )


def _union(a: OlistTables, b: OlistTables) -> OlistTables:
    if a is b:
        return a
    keep = ~b.shipments["shipment_id"].isin(a.shipments["shipment_id"]).to_numpy()
    nodes = pd.concat([a.nodes, b.nodes]).drop_duplicates("node_id").reset_index(drop=True)
    return OlistTables(
        nodes=nodes,
        shipments=pd.concat([a.shipments, b.shipments[keep]], ignore_index=True),
        facts=pd.concat([a.facts, b.facts[keep]], ignore_index=True),
        dropped={k: a.dropped.get(k, 0) + b.dropped.get(k, 0) for k in a.dropped},
    )


def entity_frame(tables: OlistTables) -> pd.DataFrame:
    """Entity rows: keys, purchase time and what the order itself says at checkout."""
    ship, facts = tables.shipments, tables.facts
    ts = ship["event_timestamp"]
    return pd.DataFrame(
        {
            "event_timestamp": ts,
            "shipment_id": ship["shipment_id"],
            "node_id": ship["node_id"],
            "origin_state": facts["origin_state"].to_numpy(),
            "dest_state": facts["dest_state"].to_numpy(),
            "dest_lat": ship["dest_lat"],
            "dest_lon": ship["dest_lon"],
            "dest_state_code": olist_tables.state_code(facts["dest_state"]).to_numpy(),
            "weekday": ts.dt.weekday.astype(float),
            "hour": ts.dt.hour.astype(float),
            "items": facts["items"].astype(float).to_numpy(),
            "weight_kg": facts["weight_kg"].to_numpy(),
            "price": facts["price"].to_numpy(),
            "freight": facts["freight"].to_numpy(),
            "label": ship["delivery_days"].astype(float),
            "promised_days": ship["promised_days"].astype(float),
        }
    )


def feature_frames(
    train: OlistTables, test: OlistTables, cut: pd.Timestamp, work_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the Feast repo in ``work_dir`` and join train and test entities point in time."""
    history = _union(train, test)
    tables = olist_tables.build_tables(history.nodes, history.shipments, history.facts)
    feast_store.write_tables(work_dir, tables)
    fs = feast_store.open_store(work_dir, PROJECT)
    feast_store.apply(fs, olist_views.definitions(work_dir / feast_store.TABLES_DIR))
    train_rows = entity_frame(train)
    train_rows = train_rows[train_rows["event_timestamp"] < cut]
    test_rows = entity_frame(test)
    test_rows = test_rows[test_rows["event_timestamp"] >= cut]
    both = pd.concat([train_rows.assign(_part="train"), test_rows.assign(_part="test")])
    joined = feast_store.historical(
        fs, both.drop(columns=["label", "promised_days"]), olist_views.SERVICE
    )
    joined["label"] = both["label"].to_numpy()
    joined["promised_days"] = both["promised_days"].to_numpy()
    is_train = joined["_part"].eq("train").to_numpy()
    return (
        joined[is_train].drop(columns="_part").reset_index(drop=True),
        joined[~is_train].drop(columns="_part").reset_index(drop=True),
    )


class OlistDeliveryModel:
    """Quantile booster on a drift-normalised target with a conformal P90."""

    def __init__(self, settings: OlistSettings | None = None) -> None:
        self.settings = settings or OlistSettings()

    def _level(self, frame: pd.DataFrame) -> np.ndarray:
        if self.settings.target == "days":
            return np.ones(len(frame))
        level = frame[LEVEL].to_numpy(dtype=float)
        return np.where(np.isfinite(level) & (level > 0), level, self.fallback_level_)

    def _booster(self) -> DeliveryQuantileModel:
        s = self.settings
        return DeliveryQuantileModel(
            FEATURES, monotone=MONOTONE, num_boost_round=s.num_boost_round, params=s.params
        )

    def _raw(
        self, model: DeliveryQuantileModel, frame: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray]:
        p50, p90 = model.predict_quantiles(frame)
        level = self._level(frame)
        return p50 * level, p90 * level

    def fit(self, frame: pd.DataFrame) -> OlistDeliveryModel:
        """Hold out the last ``valid_days`` for early stopping and the conformal step, then refit."""
        s = self.settings
        frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
        self.fallback_level_ = float(np.nanmedian(frame["label"]))
        start = frame["event_timestamp"].max() - pd.Timedelta(days=s.valid_days)
        early, late = (
            frame[frame["event_timestamp"] < start],
            frame[frame["event_timestamp"] >= start],
        )
        y_early = early["label"].to_numpy() / self._level(early)
        y_late = late["label"].to_numpy() / self._level(late)
        first = self._booster().fit(early, y_early, late, y_late)
        # The booster shifts its own P90 on the slice it early-stopped on, but the refit
        # below has no slice and so no shift: calibrate the raw P90 so the correction
        # learned here is the one applied to the refit.
        first.p90_offset_ = 0.0
        p50_late, p90_late = self._raw(first, late)
        age = (late["event_timestamp"].max() - late["event_timestamp"]).dt.total_seconds()
        weights = (
            None
            if s.conformal_half_life is None
            else np.power(0.5, age.to_numpy() / 86400.0 / s.conformal_half_life)
        )
        self.conformal_ = ConformalUpper(s.coverage, s.conformal).fit(
            late["label"].to_numpy(), self._base(p50_late, p90_late), weights
        )
        self.validation_ = quantile_metrics(
            late["label"].to_numpy(),
            p50_late,
            self.conformal_.predict(self._base(p50_late, p90_late)),
        )
        rounds = max(first.best_iterations_.values())
        refit = DeliveryQuantileModel(
            FEATURES, monotone=MONOTONE, num_boost_round=rounds, params=s.params
        )
        self.model_ = refit.fit(frame, frame["label"].to_numpy() / self._level(frame))
        self.rounds_ = rounds
        return self

    def _base(self, p50: np.ndarray, p90: np.ndarray) -> np.ndarray:
        return p50 if self.settings.conformal_base == "p50" else p90

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        p50, p90 = self._raw(self.model_, frame)
        return p50, np.maximum(self.conformal_.predict(self._base(p50, p90)), p50)


def baselines(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Olist's own promise and the per-lane (seller state × customer state) training median."""
    y = test["label"].to_numpy(dtype=float)
    promised = test["promised_days"].to_numpy(dtype=float)
    lane = LaneMedian(keys=("origin_state", "dest_state")).fit(train, train["label"].to_numpy())
    return {
        "promised_date": {
            "mae": float(np.mean(np.abs(y - promised))),
            "coverage": float(np.mean(y <= promised)),
            "mean_days": float(np.mean(promised)),
        },
        "lane_median": {"mae": float(np.mean(np.abs(y - lane.predict(test))))},
    }


def evaluate_olist(
    train_dir: Path | str,
    test_dir: Path | str,
    *,
    cut: str = DEFAULT_CUT,
    work_dir: Path | None = None,
    settings: OlistSettings | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation and return the report (JSON-ready)."""
    started = time.perf_counter()
    cut_ts = pd.Timestamp(cut, tz="UTC")
    train_tables = load_olist(train_dir)
    same = Path(train_dir).resolve() == Path(test_dir).resolve()
    test_tables = train_tables if same else load_olist(test_dir)
    with tempfile.TemporaryDirectory(prefix="routecast-olist-") as tmp:
        train, test = feature_frames(train_tables, test_tables, cut_ts, work_dir or Path(tmp))
    if train.empty or test.empty:
        raise ValueError(f"no {'training' if train.empty else 'test'} orders around cut {cut}")
    model = OlistDeliveryModel(settings).fit(train)
    p50, p90 = model.predict(test)
    metrics = quantile_metrics(test["label"].to_numpy(), p50, p90)
    return {
        "n_train": len(train),
        "n_test": len(test),
        "mae_p50": metrics["mae_p50"],
        "p90_coverage": metrics["p90_coverage"],
        "mean_p90_days": metrics["mean_p90_days"],
        "baselines": baselines(train, test),
        "cut": cut_ts.date().isoformat(),
        "validation": {k: v for k, v in model.validation_.items() if k != "n"},
        "boost_rounds": model.rounds_,
        "seconds": round(time.perf_counter() - started, 1),
    }
