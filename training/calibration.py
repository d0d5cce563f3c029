"""Post-hoc calibration fitted on data the booster did not see.

``ProbabilityCalibrator`` maps classifier scores to probabilities (isotonic when the
held-out set is large enough to estimate a step function, Platt's sigmoid otherwise);
``ConformalUpper`` widens an upper quantile until it reaches its nominal coverage on a
held-out slice (split-conformal), which also absorbs drift between training and now.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

Method = Literal["auto", "isotonic", "sigmoid"]
#: Below this many held-out rows (or 50 of the rarer class) isotonic steps overfit.
MIN_ISOTONIC_ROWS = 1000
MIN_ISOTONIC_MINORITY = 50
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


class ProbabilityCalibrator:
    """Monotone map from raw scores to calibrated probabilities."""

    def __init__(self, method: Method = "auto") -> None:
        self.method = method

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        scores = np.asarray(scores, dtype=float)
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValueError("calibration needs both classes in the held-out set")
        minority = int(min(y.sum(), len(y) - y.sum()))
        method = self.method
        if method == "auto":
            big = len(y) >= MIN_ISOTONIC_ROWS and minority >= MIN_ISOTONIC_MINORITY
            method = "isotonic" if big else "sigmoid"
        self.method_: Literal["isotonic", "sigmoid"] = method
        if method == "isotonic":
            self.isotonic_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.isotonic_.fit(scores, y)
        else:
            self.sigmoid_ = LogisticRegression(C=1e6, max_iter=1000)
            self.sigmoid_.fit(_logit(scores).reshape(-1, 1), y)
        self.n_ = len(y)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if self.method_ == "isotonic":
            out = self.isotonic_.predict(scores)
        else:
            out = self.sigmoid_.predict_proba(_logit(scores).reshape(-1, 1))[:, 1]
        return np.clip(np.asarray(out, dtype=float), 0.0, 1.0)


class ConformalUpper:
    """Split-conformal correction of an upper quantile prediction.

    ``additive`` shifts by a constant number of days; ``multiplicative`` scales, which
    suits targets whose spread grows with their level (delivery days).
    """

    def __init__(
        self, coverage: float = 0.9, mode: Literal["additive", "multiplicative"] = "additive"
    ) -> None:
        if not 0.0 < coverage < 1.0:
            raise ValueError("coverage must lie in (0, 1)")
        self.coverage = coverage
        self.mode = mode

    def fit(
        self, y: np.ndarray, upper: np.ndarray, weights: np.ndarray | None = None
    ) -> ConformalUpper:
        """Fit the correction; ``weights`` (e.g. recency) make it a weighted conformal quantile.

        With weights, the new point counts with the largest weight (it is the most recent),
        as in weighted split-conformal prediction under drift (Barber et al., 2023).
        """
        y = np.asarray(y, dtype=float)
        upper = np.asarray(upper, dtype=float)
        if len(y) == 0:
            raise ValueError("conformal calibration needs at least one held-out row")
        scores = y - upper if self.mode == "additive" else y / np.clip(upper, _EPS, None)
        n = len(scores)
        if weights is None:
            level = min(1.0, math.ceil((n + 1) * self.coverage) / n)
            self.correction_ = float(np.quantile(scores, level, method="higher"))
            return self
        w = np.asarray(weights, dtype=float)
        if w.shape != scores.shape or (w < 0).any() or not w.any():
            raise ValueError("weights must be non-negative, one per row, not all zero")
        order = np.argsort(scores, kind="stable")
        mass = np.cumsum(w[order]) / (w.sum() + w.max())
        reached = np.flatnonzero(mass >= self.coverage)
        self.correction_ = float(scores[order][reached[0] if len(reached) else -1])
        return self

    def predict(self, upper: np.ndarray) -> np.ndarray:
        upper = np.asarray(upper, dtype=float)
        if self.mode == "additive":
            return upper + self.correction_
        return upper * self.correction_


class GroupConformalUpper:
    """Group-conditional (Mondrian) split-conformal band: one correction per group.

    A single band is as wide as the most dispersed traffic needs; per group (e.g. a
    seller-state → customer-state lane) each gets the correction its own held-out rows
    ask for. Groups with fewer than ``min_rows`` held-out rows use the pooled correction.
    """

    def __init__(
        self,
        coverage: float = 0.9,
        mode: Literal["additive", "multiplicative"] = "multiplicative",
        min_rows: int = 200,
    ) -> None:
        self.coverage = coverage
        self.mode = mode
        self.min_rows = min_rows

    def fit(self, y: np.ndarray, upper: np.ndarray, groups: np.ndarray) -> GroupConformalUpper:
        y = np.asarray(y, dtype=float)
        upper = np.asarray(upper, dtype=float)
        groups = np.asarray(groups, dtype=object)
        self.pooled_ = ConformalUpper(self.coverage, self.mode).fit(y, upper)
        self.corrections_: dict[str, float] = {}
        names, counts = np.unique(groups, return_counts=True)
        for name in names[counts >= self.min_rows]:
            mask = groups == name
            fitted = ConformalUpper(self.coverage, self.mode).fit(y[mask], upper[mask])
            self.corrections_[str(name)] = fitted.correction_
        return self

    def correction(self, groups: np.ndarray) -> np.ndarray:
        pooled = self.pooled_.correction_
        return np.array([self.corrections_.get(str(g), pooled) for g in groups], dtype=float)

    def predict(self, upper: np.ndarray, groups: np.ndarray) -> np.ndarray:
        upper = np.asarray(upper, dtype=float)
        c = self.correction(np.asarray(groups, dtype=object))
        return upper + c if self.mode == "additive" else upper * c
