"""Simple baselines every model metric stands beside."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


class OnHandRule:
    """Risk rises as the requested quantity eats into recorded cover: qty / (on_hand + qty)."""

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> OnHandRule:
        self.fitted_ = True
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        on_hand = frame["on_hand"].to_numpy(dtype=float)
        qty = frame["qty"].to_numpy(dtype=float)
        return qty / (np.clip(on_hand, 0, None) + qty)


class LogisticBaseline:
    """Standardised logistic regression on the same features as the booster."""

    def __init__(self, features: tuple[str, ...]) -> None:
        self.features = features

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> LogisticBaseline:
        self.pipeline_: Pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
        self.pipeline_.fit(frame.loc[:, list(self.features)].to_numpy(float), y)
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame.loc[:, list(self.features)].to_numpy(float)
        return np.asarray(self.pipeline_.predict_proba(x)[:, 1])


class LaneMedian:
    """Median delivery days per lane (node × destination region); global median otherwise."""

    def __init__(self, keys: tuple[str, ...] = ("node_id", "dest_region")) -> None:
        self.keys = keys

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> LaneMedian:
        data = frame.loc[:, list(self.keys)].assign(_y=y)
        self.medians_ = data.groupby(list(self.keys))["_y"].median()
        self.p90_ = data.groupby(list(self.keys))["_y"].quantile(0.9)
        self.global_median_ = float(np.median(y))
        self.global_p90_ = float(np.quantile(y, 0.9))
        return self

    def _lookup(self, frame: pd.DataFrame, table: pd.Series, default: float) -> np.ndarray:
        index = pd.MultiIndex.from_frame(frame.loc[:, list(self.keys)])
        values = table.reindex(index).to_numpy(dtype=float)
        return np.where(np.isnan(values), default, values)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self._lookup(frame, self.medians_, self.global_median_)

    def predict_p90(self, frame: pd.DataFrame) -> np.ndarray:
        return self._lookup(frame, self.p90_, self.global_p90_)


class DistanceRule:
    """Days = a + b × distance, fitted by least squares: what a carrier rate table encodes."""

    def fit(self, frame: pd.DataFrame, y: np.ndarray) -> DistanceRule:
        self.model_ = LinearRegression().fit(frame[["distance_km"]].to_numpy(float), y)
        residual = y - self.model_.predict(frame[["distance_km"]].to_numpy(float))
        self.p90_offset_ = float(np.quantile(residual, 0.9))
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model_.predict(frame[["distance_km"]].to_numpy(float)))

    def predict_p90(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict(frame) + self.p90_offset_
