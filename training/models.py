"""LightGBM models as scikit-learn estimators: each owns its fit rules, whatever does the boosting.

``__init__`` stores its arguments only, ``fit`` returns self, fitted attributes end in ``_``,
so ``get_params`` and ``sklearn.base.clone`` work. Both models expose ``predict_array`` on a
float matrix whose columns follow ``feature_names_``: the request path calls it once per
order with every candidate row.

Where the trees are grown is a *fit backend*: ``LocalBackend`` (``lightgbm.train`` on this
machine, early stopping) or ``training.distributed.DaskBackend`` (a Dask cluster). The
validation split, the calibration, the pinball objective and the P90 band live
here once and apply to both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from training import prediction
from training.calibration import GroupConformalUpper, ProbabilityCalibrator
from training.metrics import pinball_loss

#: LightGBM parameters of both models; ``num_threads`` comes from the estimator.
BASE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "force_row_wise": True,
}
#: Training threads unless the caller (``TrainingConfig``) says otherwise.
DEFAULT_THREADS = 2
#: Validation rows below which all of them stop boosting and none calibrate.
MIN_CALIBRATION_SPLIT = 400
STOCKOUT_PATIENCE = 40
DELIVERY_PATIENCE = 60

Objective = Callable[[np.ndarray | None, np.ndarray], tuple[np.ndarray, np.ndarray]]
Loss = Callable[[np.ndarray], float]
Validation = tuple[np.ndarray, np.ndarray]


def feature_matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The float matrix of ``features`` in order; a missing column is named."""
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise KeyError(f"training frame lacks feature columns {missing}")
    return frame.loc[:, list(features)].to_numpy(dtype=np.float64)


def pinball_objective(alpha: float) -> Objective:
    """Pinball-loss gradient with a unit hessian, in the scikit-learn objective signature.

    A nested function on purpose: Dask ships it to the workers by value (cloudpickle), so
    an existing cluster needs only lightgbm and numpy, not routecast, on its workers.
    """

    def objective(y_true: np.ndarray | None, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if y_true is None:
            raise ValueError("the pinball objective needs labels")
        grad = np.where(y_true > y_pred, -alpha, 1.0 - alpha)
        return grad, np.ones_like(grad)

    return objective


def binary_logloss(y: np.ndarray) -> Loss:
    """Log loss of raw margins against ``y`` (what ``binary_logloss`` early-stops on)."""
    y = np.asarray(y, dtype=np.float64)

    def loss(raw: np.ndarray) -> float:
        # log(1 + e^raw) - y * raw is the binary log loss on the margin, overflow-safe.
        return float(np.mean(np.logaddexp(0.0, raw) - y * raw))

    return loss


def quantile_loss(y: np.ndarray, alpha: float) -> Loss:
    """Pinball loss of predictions against ``y`` (what the ``quantile`` metric early-stops on)."""
    return lambda pred: pinball_loss(y, pred, alpha)


@dataclass(frozen=True)
class BoostJob:
    """One booster to grow, fully specified by the estimator.

    ``params['objective']`` is ``"binary"`` or an :data:`Objective`; ``init`` is a constant
    start score for every row; ``loss`` scores raw scores on ``valid`` (for backends that
    cannot early-stop while boosting) with the same ``patience`` as early stopping.
    """

    params: Mapping[str, Any]
    x: np.ndarray
    y: np.ndarray
    rounds: int
    feature_names: Sequence[str]
    init: float | None
    valid: Validation | None
    patience: int
    loss: Loss | None

    def start(self, n: int) -> np.ndarray | None:
        """Per-row init scores for ``n`` rows (None without an init)."""
        return None if self.init is None else np.full(n, self.init)


class FitBackend(Protocol):
    """Grows one booster; the estimator decides everything else."""

    #: LightGBM's ``monotone_constraints_method`` this backend supports.
    monotone_method: str

    def boost(self, job: BoostJob) -> tuple[lgb.Booster, int]:
        """Return the booster and its best iteration (``job.rounds`` without validation)."""
        ...


class LocalBackend:
    """``lightgbm.train`` on this machine with ``lgb.early_stopping``."""

    monotone_method = "advanced"

    def boost(self, job: BoostJob) -> tuple[lgb.Booster, int]:
        params = dict(job.params)
        objective = params["objective"]
        if callable(objective):
            params["objective"] = lambda preds, data: objective(data.get_label(), preds)
        dtrain = lgb.Dataset(
            job.x,
            label=job.y,
            feature_name=list(job.feature_names),
            init_score=job.start(len(job.y)),
        )
        sets: list[lgb.Dataset] = []
        callbacks: list[Any] = []
        if job.valid is not None:
            xv, yv = job.valid
            sets = [lgb.Dataset(xv, label=yv, reference=dtrain, init_score=job.start(len(yv)))]
            callbacks = [lgb.early_stopping(job.patience, verbose=False)]
        booster = lgb.train(params, dtrain, job.rounds, valid_sets=sets, callbacks=callbacks)
        return booster, int(booster.best_iteration or job.rounds)


def _booster(model_str: str) -> lgb.Booster:
    return lgb.Booster(model_str=model_str)


class _LightGBMEstimator(BaseEstimator):  # type: ignore[misc]
    """Shared constructor and plumbing: column order, monotone directions, budget, backend."""

    # Boosters and the backend are rebuilt or dropped on pickling, never stored.
    _transient: tuple[str, ...] = ("backend",)
    feature_names_: tuple[str, ...]

    def __init__(
        self,
        features: Sequence[str] = (),
        *,
        monotone: Mapping[str, int] | None = None,
        num_boost_round: int = 400,
        params: Mapping[str, Any] | None = None,
        num_threads: int = DEFAULT_THREADS,
        backend: FitBackend | None = None,
    ) -> None:
        self.features = features
        self.monotone = monotone
        self.num_boost_round = num_boost_round
        self.params = params
        self.num_threads = num_threads
        self.backend = backend

    def _backend(self) -> FitBackend:
        return self.backend if self.backend is not None else LocalBackend()

    def _params(self, backend: FitBackend, **objective: Any) -> dict[str, Any]:
        directions = self.monotone or {}
        return {
            **BASE_PARAMS,
            "num_threads": self.num_threads,
            **(self.params or {}),
            **objective,
            "monotone_constraints": [int(directions.get(f, 0)) for f in self.features],
            "monotone_constraints_method": backend.monotone_method,
        }

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
        self.__dict__.setdefault("backend", None)
        self._restore()


def _validation(
    valid: pd.DataFrame | None, y_valid: np.ndarray | None, features: Sequence[str]
) -> Validation | None:
    if valid is None or y_valid is None or len(y_valid) == 0:
        return None
    return feature_matrix(valid, features), np.asarray(y_valid, dtype=np.float64)


def _split_validation(window: Validation | None) -> tuple[Validation | None, Validation | None]:
    """(stop, calibrate): the time-ordered window's first half stops boosting, the second
    half (never seen by the booster) calibrates; small windows only stop boosting."""
    if window is None:
        return None, None
    x, y = window
    half = len(y) // 2 if len(y) >= MIN_CALIBRATION_SPLIT else len(y)
    if half == len(y):
        return (x, y), None
    return (x[:half], y[:half]), (x[half:], y[half:])


class StockoutRiskModel(_LightGBMEstimator):
    """Binary classifier of 'the node rejects this allocation'; outputs probabilities."""

    _transient = ("backend", "booster_")

    def __init__(
        self,
        features: Sequence[str] = (),
        *,
        monotone: Mapping[str, int] | None = None,
        num_boost_round: int = 400,
        params: Mapping[str, Any] | None = None,
        num_threads: int = DEFAULT_THREADS,
        backend: FitBackend | None = None,
        calibrate: bool = True,
    ) -> None:
        super().__init__(
            features,
            monotone=monotone,
            num_boost_round=num_boost_round,
            params=params,
            num_threads=num_threads,
            backend=backend,
        )
        #: False: the whole validation window stops boosting and the probabilities stay
        #: the booster's own, for a caller that calibrates on rows of its choosing.
        self.calibrate = calibrate

    def fit(
        self,
        train: pd.DataFrame,
        y: np.ndarray,
        valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | None = None,
    ) -> StockoutRiskModel:
        backend = self._backend()
        window = _validation(valid, y_valid, self.features)
        stop, cal = _split_validation(window) if self.calibrate else (window, None)
        booster, best = backend.boost(
            BoostJob(
                params=self._params(backend, objective="binary", metric="binary_logloss"),
                x=feature_matrix(train, self.features),
                y=np.asarray(y),
                rounds=self.num_boost_round,
                feature_names=self.features,
                init=None,
                valid=stop,
                patience=STOCKOUT_PATIENCE,
                loss=None if stop is None else binary_logloss(stop[1]),
            )
        )
        self.model_str_ = booster.model_to_string(num_iteration=best)
        self.booster_ = _booster(self.model_str_)
        self.feature_names_ = tuple(self.features)
        self.best_iteration_ = best
        self.calibration_: ProbabilityCalibrator | None = None
        if cal is not None and len(np.unique(cal[1])) == 2:
            self.calibration_ = ProbabilityCalibrator().fit(self._raw(cal[0]), cal[1])
        return self

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(x, num_threads=1), dtype=np.float64)

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        raw = self._raw(x)
        cal = getattr(self, "calibration_", None)
        return raw if cal is None else cal.predict(raw)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_array(feature_matrix(frame, self.feature_names_))

    def _importance_booster(self) -> lgb.Booster:
        return self.booster_

    def _restore(self) -> None:
        if "model_str_" in self.__dict__:
            self.booster_ = _booster(self.model_str_)
        if isinstance(self.__dict__.get("calibration_"), dict):  # pickled by an older release
            self.calibration_ = ProbabilityCalibrator.from_mapping(self.__dict__["calibration_"])


BandBase = Literal["p50", "p90"]


class DeliveryQuantileModel(_LightGBMEstimator):
    """Delivery days: a P50 booster and a conformal P90 band, the one P90 rule.

    P90 = *base* × *q*<sub>group</sub>. The base is the P50 (``band_on="p50"``) or a P90
    booster's prediction (``"p90"``: conformalized quantile regression, CQR), so the
    band's width can follow every feature, not just the P50. *q* is the split-conformal
    ``coverage`` quantile of delivery days ÷ base over **all** fitted rows, each base out
    of fold (``band_folds`` contiguous blocks of the time-ordered rows, each scored by
    boosters that did not see it), per group of the ``band_groups`` feature values with
    at least ``band_min_rows`` rows and pooled elsewhere
    (``training.calibration.GroupConformalUpper``). A band measured over the whole period
    is not at the mercy of one unusual month, and a group gets the coverage its own tail
    asks for; with ``band_floor`` set, ``coverage`` is the aggregate and each group's
    level (≥ the floor) is allocated where coverage costs the fewest days. The groups are
    feature columns, so the request path finds them in the matrix it already has. The Olist evaluation (P50 base, state lanes) and production
    (CQR, weekday × node type) both use this estimator; docs/evaluation.md chose each.
    """

    _transient = ("backend", "booster_", "booster90_", "out_of_fold_", "out_of_fold_upper_")

    def __init__(
        self,
        features: Sequence[str] = (),
        *,
        monotone: Mapping[str, int] | None = None,
        num_boost_round: int = 400,
        params: Mapping[str, Any] | None = None,
        num_threads: int = DEFAULT_THREADS,
        backend: FitBackend | None = None,
        coverage: float = 0.9,
        band_groups: Sequence[str] = (),
        band_min_rows: int = 300,
        band_folds: int = 3,
        band_on: BandBase = "p50",
        band_floor: float | None = None,
    ) -> None:
        super().__init__(
            features,
            monotone=monotone,
            num_boost_round=num_boost_round,
            params=params,
            num_threads=num_threads,
            backend=backend,
        )
        self.coverage = coverage
        self.band_groups = band_groups
        self.band_min_rows = band_min_rows
        self.band_folds = band_folds
        self.band_on = band_on
        self.band_floor = band_floor

    def _boost(
        self,
        backend: FitBackend,
        x: np.ndarray,
        y: np.ndarray,
        rounds: int,
        window: Validation | None,
        alpha: float = 0.5,
    ) -> tuple[lgb.Booster, int]:
        """A quantile booster: pinball loss as a custom objective (unit hessian) from the
        empirical quantile, since LightGBM refuses monotone constraints with its built-in
        quantile objective; the constraints then hold by construction."""
        return backend.boost(
            BoostJob(
                params=self._params(
                    backend,
                    objective=pinball_objective(alpha),
                    alpha=alpha,
                    metric="quantile",
                    min_sum_hessian_in_leaf=1.0,
                ),
                x=x,
                y=y,
                rounds=rounds,
                feature_names=self.features,
                init=float(np.quantile(y, alpha)),
                valid=window,
                patience=DELIVERY_PATIENCE,
                loss=None if window is None else quantile_loss(window[1], alpha),
            )
        )

    def fit(
        self,
        train: pd.DataFrame,
        y: np.ndarray,
        valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | None = None,
    ) -> DeliveryQuantileModel:
        """Pick the rounds on ``valid`` (early stopping), cross-fit the band over train
        then valid (time order), and refit the booster(s) on both with those rounds."""
        if self.band_on not in ("p50", "p90"):
            raise ValueError(f"band_on must be 'p50' or 'p90', got {self.band_on!r}")
        backend = self._backend()
        window = _validation(valid, y_valid, self.features)
        x = feature_matrix(train, self.features)
        y = np.asarray(y, dtype=np.float64)
        _, rounds = self._boost(backend, x, y, self.num_boost_round, window)
        cqr = self.band_on == "p90"
        rounds90 = 0
        if cqr:
            logged = None if window is None else (window[0], np.log1p(window[1]))
            rounds90 = self._boost(backend, x, np.log1p(y), self.num_boost_round, logged, 0.9)[1]
        if window is not None:
            x, y = np.vstack([x, window[0]]), np.concatenate([y, window[1]])
        if self.band_folds < 2 or len(y) < 2 * self.band_folds:
            raise ValueError(
                f"band_folds: the P90 band needs at least 2 folds of 2 rows, got "
                f"{self.band_folds} folds for {len(y)} rows"
            )
        self.feature_names_ = tuple(self.features)
        out_of_fold = np.empty(len(y))
        base = np.empty(len(y))
        for block in np.array_split(np.arange(len(y)), self.band_folds):
            rest = np.ones(len(y), dtype=bool)
            rest[block] = False
            booster, _ = self._boost(backend, x[rest], y[rest], rounds, None)
            out_of_fold[block] = self._quantile(booster, x[block], float(np.quantile(y[rest], 0.5)))
            base[block] = out_of_fold[block]
            if cqr:
                booster, init90 = self._boost90(backend, x[rest], y[rest], rounds90)
                upper = self._quantile(booster, x[block], init90, log=True)
                base[block] = np.maximum(upper, out_of_fold[block])
        groups = self.groups(x)
        self.band_ = GroupConformalUpper(
            self.coverage, "multiplicative", self.band_min_rows, self.band_floor
        ).fit(y, base, groups)
        #: Out-of-fold P50 and P90 of every fitted row (train, then valid), for validation.
        self.out_of_fold_ = out_of_fold
        self.out_of_fold_upper_ = np.maximum(self.band_.predict(base, groups), out_of_fold)
        booster, _ = self._boost(backend, x, y, rounds, None)
        self.init_ = float(np.quantile(y, 0.5))
        self.model_str_ = booster.model_to_string(num_iteration=rounds)
        self.best_iteration_ = rounds
        self.model_str90_: str | None = None
        if cqr:
            booster, self.init90_ = self._boost90(backend, x, y, rounds90)
            self.model_str90_ = booster.model_to_string(num_iteration=rounds90)
        self._restore()
        return self

    def _boost90(
        self, backend: FitBackend, x: np.ndarray, y: np.ndarray, rounds: int
    ) -> tuple[lgb.Booster, float]:
        """The P90 booster of CQR, on log(1 + days): quantiles commute with a monotone map,
        and a unit-hessian pinball step falls only 0.1 × the learning rate per round from
        the overall P90, too slow for short trips on the scale of days."""
        booster, _ = self._boost(backend, x, np.log1p(y), rounds, None, 0.9)
        return booster, float(np.quantile(np.log1p(y), 0.9))

    @staticmethod
    def _quantile(
        booster: lgb.Booster, x: np.ndarray, init: float, log: bool = False
    ) -> np.ndarray:
        return prediction.quantile(np.asarray(booster.predict(x, num_threads=1)), init, log)

    def groups(self, x: np.ndarray) -> np.ndarray:
        """The band's group of each row: its ``band_groups`` values joined (one group if none)."""
        index = [self.feature_names_.index(g) for g in self.band_groups]
        return prediction.group_keys(np.asarray(x)[:, index])

    def upper(self, p50: np.ndarray, x: np.ndarray, scale: np.ndarray | float = 1.0) -> np.ndarray:
        """The P90 for these P50s and feature rows. The band multiplies, so any unit works: a
        caller whose target is days ÷ a level passes P50s in days and the level as ``scale``
        (it converts the P90 booster's prediction, which is in target units)."""
        booster90 = getattr(self, "booster90_", None)
        raw90 = None if booster90 is None else booster90.predict(x, num_threads=1)
        return prediction.delivery_upper(
            p50,
            raw90,
            getattr(self, "init90_", 0.0),
            self.band_.correction(self.groups(x)),
            self.band_.mode == "additive",
            scale,
        )

    def predict_array(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (p50, p90) in days, clipped at 0, with p90 >= p50."""
        p50 = self._quantile(self.booster_, x, self.init_)
        return p50, self.upper(p50, x)

    def predict_quantiles(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_array(feature_matrix(frame, self.feature_names_))

    def _importance_booster(self) -> lgb.Booster:
        return self.booster_

    def _restore(self) -> None:
        if "model_str_" in self.__dict__:
            self.booster_ = _booster(self.model_str_)
        # A P90 booster only for CQR; models pickled before it have no such string.
        model_str90 = self.__dict__.get("model_str90_")
        self.booster90_ = None if model_str90 is None else _booster(model_str90)
