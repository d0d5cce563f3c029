"""Training sets: labels from canonical events, features only through Feast (point in time)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from feast import FeatureStore

from features import catalog
from features.store import training_frame


@dataclass(frozen=True)
class Split:
    """Time-ordered train / validation / test frames; nothing later leaks backwards."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame

    @property
    def window(self) -> tuple[str, str]:
        return (
            str(self.train["event_timestamp"].min()),
            str(self.test["event_timestamp"].max()),
        )


def stockout_entities(raw_dir: Path) -> pd.DataFrame:
    alloc = pd.read_parquet(raw_dir / "allocations.parquet")
    return pd.DataFrame(
        {
            "event_timestamp": alloc["event_timestamp"],
            "node_id": alloc["node_id"].astype(str),
            "sku": alloc["sku"].astype(str),
            "qty": alloc["qty"].astype(float),
            "label": alloc["rejected"].astype(int),
        }
    )


def delivery_entities(raw_dir: Path) -> pd.DataFrame:
    ship = pd.read_parquet(raw_dir / "shipments.parquet")
    ts = pd.to_datetime(ship["event_timestamp"], utc=True)
    return pd.DataFrame(
        {
            "event_timestamp": ts,
            "node_id": ship["node_id"].astype(str),
            "dest_region": ship["dest_region"].astype(str),
            "dest_lat": ship["dest_lat"].astype(float),
            "dest_lon": ship["dest_lon"].astype(float),
            "weekday": ts.dt.weekday.astype(float),
            "label": ship["delivery_days"].astype(float),
            "promised_days": ship["promised_days"].astype(float),
        }
    )


def time_split(frame: pd.DataFrame, valid: float = 0.15, test: float = 0.15) -> Split:
    """Cut by event time so validation and test lie strictly after training."""
    frame = frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    ts = frame["event_timestamp"]
    t1 = ts.quantile(1 - valid - test)
    t2 = ts.quantile(1 - test)
    return Split(
        train=frame[ts < t1].reset_index(drop=True),
        valid=frame[(ts >= t1) & (ts < t2)].reset_index(drop=True),
        test=frame[ts >= t2].reset_index(drop=True),
    )


def build_training_set(
    store: FeatureStore, entities: pd.DataFrame, service: str, *, max_rows: int | None = None
) -> Split:
    """Point-in-time join through the feature service, then a time split."""
    if max_rows is not None and len(entities) > max_rows:
        entities = entities.sample(n=max_rows, random_state=7)
    frame = training_frame(store, entities, service)
    features = (
        catalog.STOCKOUT_FEATURES
        if service == catalog.SERVICE_STOCKOUT
        else catalog.DELIVERY_FEATURES
    )
    frame = frame.replace([np.inf, -np.inf], np.nan).dropna(subset=[*features, "label"])
    return time_split(frame)
