"""Post-hoc calibration fitted on data the booster did not see.

``ProbabilityCalibrator`` maps classifier scores to probabilities (isotonic when the
held-out set is large enough to estimate a step function, Platt's sigmoid otherwise); the
stockout model and the real-data evaluations use this one;
``ConformalUpper`` widens an upper quantile until it reaches its nominal coverage on a
held-out slice (split-conformal), which also absorbs drift between training and now;
``GroupConformalUpper`` does so per group (Mondrian), at one level or at levels allocated
to the cheapest groups under an aggregate target; ``CoverageMonitor`` then follows
the band's coverage on recent parcels whose outcome is known, day by day, and
``BandTracker`` steers the band from each promise's outcome once it is known (online
quantile tracking).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.realdata.survival import kaplan_meier_quantile
from training import prediction

Method = Literal["auto", "isotonic", "sigmoid"]
#: Below this many held-out rows (or 50 positives) isotonic steps overfit; Platt instead.
MIN_ISOTONIC_ROWS = 1000
MIN_ISOTONIC_POSITIVES = 50
_EPS = prediction.EPS


class ProbabilityCalibrator:
    """Monotone map from raw scores to calibrated probabilities (the one the models use).

    Fitted state is plain numbers (isotonic thresholds or Platt's slope and intercept), so a
    pickled model carries no scikit-learn objects and predicts with one ``np.interp``.
    """

    def __init__(self, method: Method = "auto") -> None:
        self.method = method

    def fit(self, scores: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        scores = np.asarray(scores, dtype=float)
        y = np.asarray(y, dtype=int)
        if len(np.unique(y)) < 2:
            raise ValueError("calibration needs both classes in the held-out set")
        method = self.method
        if method == "auto":
            big = len(y) >= MIN_ISOTONIC_ROWS and y.sum() >= MIN_ISOTONIC_POSITIVES
            method = "isotonic" if big else "sigmoid"
        self.method_: Literal["isotonic", "sigmoid"] = method
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
            self.x_ = np.asarray(iso.X_thresholds_, float)
            self.y_ = np.asarray(iso.y_thresholds_, float)
        else:
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(
                prediction.logit(scores).reshape(-1, 1), y
            )
            self.a_, self.b_ = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        self.n_ = len(y)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        if self.method_ == "isotonic":
            return prediction.calibrated(scores, "isotonic", x=self.x_, y=self.y_)
        return prediction.calibrated(scores, "sigmoid", a=self.a_, b=self.b_)

    @classmethod
    def from_mapping(cls, saved: dict[str, Any]) -> ProbabilityCalibrator:
        """Rebuild from the dict older pickled models stored (``method`` + x/y or a/b)."""
        cal = cls(saved["method"])
        cal.method_ = saved["method"]
        if cal.method_ == "isotonic":
            cal.x_, cal.y_ = np.asarray(saved["x"], float), np.asarray(saved["y"], float)
        else:
            cal.a_, cal.b_ = float(saved["a"]), float(saved["b"])
        return cal


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

    With ``floor`` set, ``coverage`` is an *aggregate* target and the groups' levels
    differ: each group is covered at least at ``floor`` and the levels are raised where
    the next covered row costs the fewest days of band until ``coverage`` of all rows are
    covered (``allocate_levels``). Thin groups then form one pooled group of their own,
    whose correction also serves groups never seen.
    """

    def __init__(
        self,
        coverage: float = 0.9,
        mode: Literal["additive", "multiplicative"] = "multiplicative",
        min_rows: int = 200,
        floor: float | None = None,
    ) -> None:
        if floor is not None and not 0.0 < floor <= coverage:
            raise ValueError("floor must lie in (0, coverage]")
        self.coverage = coverage
        self.mode = mode
        self.min_rows = min_rows
        self.floor = floor

    def fit(self, y: np.ndarray, upper: np.ndarray, groups: np.ndarray) -> GroupConformalUpper:
        y = np.asarray(y, dtype=float)
        upper = np.asarray(upper, dtype=float)
        groups = np.asarray(groups, dtype=object)
        self.pooled_ = ConformalUpper(self.coverage, self.mode).fit(y, upper)
        self.corrections_: dict[str, float] = {}
        names, counts = np.unique(groups, return_counts=True)
        kept = names[counts >= self.min_rows]
        if self.floor is not None:
            self._fit_allocated(y, upper, groups, kept, self.floor)
            return self
        for name in kept:
            mask = groups == name
            fitted = ConformalUpper(self.coverage, self.mode).fit(y[mask], upper[mask])
            self.corrections_[str(name)] = fitted.correction_
        return self

    def _fit_allocated(
        self, y: np.ndarray, upper: np.ndarray, groups: np.ndarray, kept: np.ndarray, floor: float
    ) -> None:
        label = np.where(np.isin(groups, kept), groups, _POOLED)
        if self.mode == "additive":
            all_scores, cost = y - upper, np.ones(len(y))
        else:
            # One unit of factor costs the group its summed base in days of band.
            all_scores, cost = y / np.clip(upper, _EPS, None), upper
        scores, weights = {}, {}
        for name in np.unique(label):
            mask = label == name
            scores[str(name)] = np.sort(all_scores[mask])
            weights[str(name)] = float(cost[mask].sum())
        covered = allocate_levels(scores, weights, self.coverage, floor)
        #: Share of its calibration rows each group's correction covers.
        self.levels_: dict[str, float] = {}
        for name, k in covered.items():
            correction = float(scores[name][k - 1])
            self.levels_[name] = k / len(scores[name])
            if name == _POOLED:
                self.pooled_.correction_ = correction
            else:
                self.corrections_[name] = correction

    def correction(self, groups: np.ndarray) -> np.ndarray:
        return prediction.factors(groups, self.corrections_, self.pooled_.correction_)

    def predict(self, upper: np.ndarray, groups: np.ndarray) -> np.ndarray:
        return prediction.widen(upper, self.correction(groups), self.mode == "additive")


#: The group thin groups are pooled into when levels are allocated.
_POOLED = "\x00pooled"


def allocate_levels(
    scores: dict[str, np.ndarray], weights: dict[str, float], coverage: float, floor: float
) -> dict[str, int]:
    """Per-group conformal levels that cover ``coverage`` of all rows with the least band.

    ``scores`` are each group's conformity scores (the correction that would cover a row),
    ``weights`` what one unit of correction costs in that group (its summed base for a
    multiplicative band, its row count for an additive one). Every group starts at
    ``floor``; then the covered counts rise along each group's lower convex hull of cost
    against rows covered, cheapest extra row first over all groups (the Lagrangian
    solution), until ``coverage`` × (rows + 1) rows are covered (split conformal's
    (n + 1) convention, as is the floor's ⌈floor × (n + 1)⌉). Returns the rows to cover
    per group: its correction is its that-many-th smallest score.
    """
    sizes = {g: len(s) for g, s in scores.items()}
    start = {g: min(n, max(1, math.ceil(floor * (n + 1)))) for g, n in sizes.items()}
    total = sum(sizes.values())
    need = min(total, math.ceil(coverage * (total + 1))) - sum(start.values())
    segments: list[tuple[float, str, int]] = []  # (cost per extra row, group, rows to reach)
    for g, s in scores.items():
        ordered = np.sort(np.asarray(s, dtype=float))
        cost = weights[g] * ordered  # cost of covering k rows = cost[k - 1]
        hull = [start[g]]
        for k in range(start[g] + 1, sizes[g] + 1):
            while len(hull) >= 2:
                a, b = hull[-2], hull[-1]
                # b lies on or above the chord a → k: not on the lower hull.
                if (cost[b - 1] - cost[a - 1]) * (k - a) >= (cost[k - 1] - cost[a - 1]) * (b - a):
                    hull.pop()
                else:
                    break
            hull.append(k)
        for a, b in itertools.pairwise(hull):
            segments.append(((cost[b - 1] - cost[a - 1]) / (b - a), g, b))
    reached = dict(start)
    for _, g, b in sorted(segments, key=lambda t: t[0]):
        if need <= 0:
            break
        need -= b - reached[g]
        reached[g] = b
    return reached


class CoverageMonitor:
    """Follows a band's recent coverage: how much wider (or narrower) it should be today.

    A band measured over the training period is too narrow while deliveries slow down and
    too wide while they speed up. Each day, before its first order, the monitor takes the
    parcels purchased in the last ``window_days`` and their *normalised* delivery times
    (days ÷ the band they were promised, so 1 is exactly on the promise) as known at that
    instant: a parcel still travelling counts as "at least this long" (Kaplan–Meier, as
    the cohort level does). The ``coverage`` quantile of those is the factor that would
    have covered them; the band is multiplied by it to the power ``weight`` (0: static,
    1: follow it fully), clipped to ``bounds``. Only outcomes known before the day began
    are used, so it can run in production and in a backtest alike.
    """

    def __init__(
        self,
        coverage: float = 0.9,
        window_days: float = 84.0,
        weight: float = 0.5,
        bounds: tuple[float, float] = (0.5, 2.0),
    ) -> None:
        if not 0.0 < coverage < 1.0:
            raise ValueError("coverage must lie in (0, 1)")
        self.coverage = coverage
        self.window_days = window_days
        self.weight = weight
        self.bounds = bounds

    def factors(
        self,
        purchased: np.ndarray,
        delivered: np.ndarray,
        band: np.ndarray,
        at: np.ndarray,
    ) -> np.ndarray:
        """One factor per instant in ``at`` (all in days on one clock).

        ``purchased``/``delivered``/``band`` describe the past promises (``delivered`` may
        lie after an instant: that parcel is then still travelling; NaN: never known).
        """
        purchased, delivered, band, at = (
            np.asarray(a, dtype=float) for a in (purchased, delivered, band, at)
        )
        if not (len(purchased) == len(delivered) == len(band)):
            raise ValueError("purchased, delivered and band must have one value per parcel")
        lo, hi = self.bounds
        out = np.ones(len(at))
        cache: dict[float, float] = {}
        for i, instant in enumerate(at):
            if instant not in cache:
                recent = (purchased >= instant - self.window_days) & (purchased < instant)
                known = delivered[recent] <= instant
                until = np.where(known, delivered[recent], instant) - purchased[recent]
                scores = until / np.clip(band[recent], _EPS, None)
                factor = kaplan_meier_quantile(scores, known, self.coverage)
                if not np.isfinite(factor):
                    # Over a tenth still travelling beyond every time seen: at least the
                    # largest of them (no parcels at all: no evidence, no change).
                    factor = float(scores.max()) if len(scores) else 1.0
                cache[instant] = float(factor)
            out[i] = float(np.clip(cache[instant], lo, hi)) ** self.weight
        return out


class BandTracker:
    """Online recalibration of a band from its own promises' outcomes (quantile tracking).

    Every morning the band factor *f* moves on the log scale by ``step`` for each promise
    resolved the day before, × (1 if it was missed, else 0, − (1 − ``coverage``)),
    clipped to ``bounds``: the quantile-tracking form of adaptive conformal inference
    (Gibbs & Candès, 2021; Angelopoulos, Candès & Tibshirani, 2023), applied in daily
    batches because outcomes arrive so, weeks after the promise. The step is per promise,
    not per day: a day's *share* missed is biased (on a Sunday few parcels arrive while
    promise dates keep passing, so Monday's batch is mostly misses). A promise is *resolved* when
    its parcel arrives (covered unless it is later than the promise) or when its promise
    date passes without it (missed), and is used only from the close of that day, as a
    promise monitor in production would see it. The promises the tracker scores are its
    own (``base`` × the factor of the parcel's purchase day, never below ``lower``), so a
    backtest replays what production would have promised.
    """

    def __init__(
        self, coverage: float = 0.9, step: float = 0.0005, bounds: tuple[float, float] = (0.5, 2.0)
    ) -> None:
        if not 0.0 < coverage < 1.0:
            raise ValueError("coverage must lie in (0, 1)")
        if step < 0 or not 0 < bounds[0] <= 1 <= bounds[1]:
            raise ValueError("step must be >= 0 and bounds must contain 1")
        self.coverage = coverage
        self.step = step
        self.bounds = bounds

    def factors(
        self,
        purchased: np.ndarray,
        delivered: np.ndarray,
        base: np.ndarray,
        lower: np.ndarray | None = None,
    ) -> np.ndarray:
        """The factor in force on each parcel's purchase day (days on one clock).

        ``delivered`` NaN: outcome never known (the parcel gives no feedback). The factor
        starts at 1 on the first purchase day; pass the history before the parcels of
        interest so it has warmed up by then.
        """
        purchased, delivered, base = (
            np.asarray(a, dtype=float) for a in (purchased, delivered, base)
        )
        if not (len(purchased) == len(delivered) == len(base)):
            raise ValueError("purchased, delivered and base must have one value per parcel")
        floor = np.zeros(len(base)) if lower is None else np.asarray(lower, dtype=float)
        out = np.ones(len(purchased))
        if len(purchased) == 0:
            return out
        order = np.argsort(purchased, kind="stable")
        day = np.floor(purchased[order]).astype(np.int64)
        took = (delivered - purchased)[order]
        first = np.searchsorted(day, np.arange(day[0], day[-1] + 2))
        lo_log, hi_log = math.log(self.bounds[0]), math.log(self.bounds[1])
        miss_rate = 1.0 - self.coverage
        resolved: dict[int, list[float]] = {}  # day a batch becomes usable -> missed flags
        f_log = 0.0
        for d in range(int(day[0]), int(day[-1]) + 1):
            batch = resolved.pop(d, None)
            if batch:
                moved = f_log + self.step * (sum(batch) - miss_rate * len(batch))
                f_log = min(hi_log, max(lo_log, moved))
            lo, hi = first[d - day[0]], first[d - day[0] + 1]
            if lo == hi:
                continue
            rows = order[lo:hi]
            out[rows] = math.exp(f_log)
            promise = np.maximum(base[rows] * out[rows], floor[rows])
            for t0, spent, promised in zip(purchased[rows], took[lo:hi], promise, strict=True):
                if not np.isfinite(spent):
                    continue
                # Known at arrival, or when the promise date passes; usable the next day.
                usable = math.floor(t0 + min(spent, promised)) + 1
                resolved.setdefault(usable, []).append(float(spent > promised))
        return out
