"""LightGBM models in scikit-learn style: ``fit`` returns self, fitted attributes end in ``_``.

Both models expose ``predict_array`` on a float matrix whose columns follow
``feature_names_``: the request path calls it once per order with every candidate row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    # Training threads; the test suite sets 1 so parallel test workers do not oversubscribe.
    "num_threads": int(os.environ.get("ROUTECAST_LGBM_THREADS", "2")),
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}


def _monotone(features: Sequence[str], directions: Mapping[str, int]) -> list[int]:
    return [int(directions.get(name, 0)) for name in features]


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise KeyError(f"training frame lacks feature columns {missing}")
    return frame.loc[:, list(features)].to_numpy(dtype=np.float64)


def _pinball_objective(alpha: float) -> Any:
    """Gradient of the pinball loss at ``alpha`` with a unit hessian."""

    def objective(preds: np.ndarray, data: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
        y = data.get_label()
        grad = np.where(y > preds, -alpha, 1.0 - alpha)
        return grad, np.ones_like(grad)

    return objective


def fit_calibration(raw: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Isotonic with enough held-out rows and positives, Platt (sigmoid) otherwise.

    Both maps are non-decreasing, so the booster's monotone constraints survive.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y, dtype=int)
    if len(y) >= 1000 and y.sum() >= 50:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return {
            "method": "isotonic",
            "x": np.asarray(iso.X_thresholds_, float),
            "y": np.asarray(iso.y_thresholds_, float),
        }
    logit = np.log(np.clip(raw, 1e-6, 1 - 1e-6) / np.clip(1 - raw, 1e-6, 1)).reshape(-1, 1)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return {"method": "sigmoid", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def apply_calibration(cal: Mapping[str, Any], raw: np.ndarray) -> np.ndarray:
    if cal["method"] == "isotonic":
        return np.asarray(np.interp(raw, cal["x"], cal["y"]), dtype=np.float64)
    logit = np.log(np.clip(raw, 1e-6, 1 - 1e-6) / np.clip(1 - raw, 1e-6, 1))
    return np.asarray(1.0 / (1.0 + np.exp(-(cal["a"] * logit + cal["b"]))), dtype=np.float64)


def _booster(model_str: str) -> lgb.Booster:
    return lgb.Booster(model_str=model_str)


class _LightGBMEstimator:
    """Shared constructor: the column order, monotone directions and boosting budget."""

    def __init__(
        self,
        features: Sequence[str],
        *,
        monotone: Mapping[str, int] | None = None,
        num_boost_round: int = 400,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.features = tuple(features)
        self.monotone = dict(monotone or {})
        self.num_boost_round = num_boost_round
        self.params = {**BASE_PARAMS, **(params or {})}

    # Boosters are rebuilt from their model strings after unpickling, never pickled.
    _transient: tuple[str, ...] = ()
    feature_names_: tuple[str, ...]

    def _importance_booster(self) -> lgb.Booster:
        raise NotImplementedError

    def _restore(self) -> None:
        """Rebuild transient boosters from the fitted model strings."""

    def feature_importance(self) -> dict[str, float]:
        gains = self._importance_booster().feature_importance(importance_type="gain")
        return {n: float(g) for n, g in zip(self.feature_names_, gains, strict=True)}

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._transient}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._restore()


class StockoutRiskModel(_LightGBMEstimator):
    """Binary classifier of 'the node rejects this allocation'; outputs probabilities."""

    _transient = ("booster_",)

    def fit(
        self,
        train: pd.DataFrame,
        y: np.ndarray,
        valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | None = None,
    ) -> StockoutRiskModel:
        params = {
            **self.params,
            "objective": "binary",
            "metric": "binary_logloss",
            "monotone_constraints": _monotone(self.features, self.monotone),
            "monotone_constraints_method": "advanced",
        }
        dtrain = lgb.Dataset(
            _matrix(train, self.features), label=y, feature_name=list(self.features)
        )
        callbacks: list[Any] = []
        sets: list[lgb.Dataset] = []
        x_cal = y_cal = None
        if valid is not None and y_valid is not None:
            # Time-ordered validation: the first half stops boosting, the second half
            # (never seen by the booster) calibrates its probabilities.
            x_val = _matrix(valid, self.features)
            y_val = np.asarray(y_valid)
            half = len(y_val) // 2 if len(y_val) >= 400 else len(y_val)
            sets = [lgb.Dataset(x_val[:half], label=y_val[:half], reference=dtrain)]
            callbacks = [lgb.early_stopping(40, verbose=False)]
            if half < len(y_val):
                x_cal, y_cal = x_val[half:], y_val[half:]
        booster = lgb.train(
            params, dtrain, self.num_boost_round, valid_sets=sets, callbacks=callbacks
        )
        self.model_str_ = booster.model_to_string(num_iteration=booster.best_iteration or None)
        self.booster_ = _booster(self.model_str_)
        self.feature_names_ = self.features
        self.best_iteration_ = int(booster.best_iteration or self.num_boost_round)
        self.calibration_ = None
        if x_cal is not None and y_cal is not None and len(np.unique(y_cal)) == 2:
            self.calibration_ = fit_calibration(self._raw(x_cal), y_cal)
        return self

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(x, num_threads=1), dtype=np.float64)

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        raw = self._raw(x)
        cal = getattr(self, "calibration_", None)
        return raw if cal is None else apply_calibration(cal, raw)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_array(_matrix(frame, self.feature_names_))

    def _importance_booster(self) -> lgb.Booster:
        return self.booster_

    def _restore(self) -> None:
        if "model_str_" in self.__dict__:
            self.booster_ = _booster(self.model_str_)


class DeliveryQuantileModel(_LightGBMEstimator):
    """Delivery days as two quantile boosters (P50, P90); predictions never cross."""

    _transient = ("boosters_",)

    quantiles = (0.5, 0.9)

    def fit(
        self,
        train: pd.DataFrame,
        y: np.ndarray,
        valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | None = None,
    ) -> DeliveryQuantileModel:
        """Fit one booster per quantile.

        LightGBM refuses monotone constraints with its built-in quantile objective, so the
        pinball loss is given as a custom objective (unit hessian) starting from the
        empirical quantile; the constraints then hold by construction.
        """
        x = _matrix(train, self.features)
        y = np.asarray(y, dtype=np.float64)
        self.model_strs_: dict[float, str] = {}
        self.init_: dict[float, float] = {}
        self.best_iterations_: dict[float, int] = {}
        for alpha in self.quantiles:
            init = float(np.quantile(y, alpha))
            params = {
                **self.params,
                "objective": _pinball_objective(alpha),
                "alpha": alpha,
                "metric": "quantile",
                "min_sum_hessian_in_leaf": 1.0,
                "monotone_constraints": _monotone(self.features, self.monotone),
                "monotone_constraints_method": "advanced",
            }
            dtrain = lgb.Dataset(
                x, label=y, feature_name=list(self.features), init_score=np.full(len(y), init)
            )
            sets: list[lgb.Dataset] = []
            callbacks: list[Any] = []
            if valid is not None and y_valid is not None:
                sets = [
                    lgb.Dataset(
                        _matrix(valid, self.features),
                        label=y_valid,
                        reference=dtrain,
                        init_score=np.full(len(y_valid), init),
                    )
                ]
                callbacks = [lgb.early_stopping(60, verbose=False)]
            booster = lgb.train(
                params, dtrain, self.num_boost_round, valid_sets=sets, callbacks=callbacks
            )
            self.model_strs_[alpha] = booster.model_to_string(
                num_iteration=booster.best_iteration or None
            )
            self.init_[alpha] = init
            self.best_iterations_[alpha] = int(booster.best_iteration or self.num_boost_round)
        self._load_boosters()
        self.feature_names_ = self.features
        self.p90_offset_ = 0.0
        if valid is not None and y_valid is not None and len(y_valid) >= 50:
            # Split-conformal shift: the P90 covers 90% of the validation window.
            _, p90 = self.predict_array(_matrix(valid, self.features))
            self.p90_offset_ = float(np.quantile(np.asarray(y_valid, float) - p90, 0.9))
        return self

    def _load_boosters(self) -> None:
        self.boosters_ = {a: _booster(s) for a, s in self.model_strs_.items()}

    def predict_array(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (p50, p90) in days, clipped at 0, with p90 >= p50 enforced."""
        raw50 = np.asarray(self.boosters_[0.5].predict(x, num_threads=1)) + self.init_[0.5]
        raw90 = (
            np.asarray(self.boosters_[0.9].predict(x, num_threads=1))
            + self.init_[0.9]
            + getattr(self, "p90_offset_", 0.0)
        )
        p50 = np.clip(raw50, 0.0, None)
        p90 = np.maximum(raw90, p50)
        return np.asarray(p50, dtype=np.float64), np.asarray(p90, dtype=np.float64)

    def predict_quantiles(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_array(_matrix(frame, self.feature_names_))

    def _importance_booster(self) -> lgb.Booster:
        return self.boosters_[0.5]

    def _restore(self) -> None:
        if "model_strs_" in self.__dict__:
            self._load_boosters()
