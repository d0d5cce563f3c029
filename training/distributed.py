"""Training on an existing Dask cluster through ``lightgbm.dask``.

The training frame is cut into one contiguous row block per Dask worker and LightGBM's
data-parallel learner builds each tree from histograms reduced across the workers. The
fitted booster comes back as a plain ``lightgbm.Booster`` wrapped in the same model classes
as single-machine training, so serving, pickling and MLflow logging cannot tell them apart.

Two things differ from single-machine training, both forced by LightGBM's distributed mode:

* Early stopping hangs or breaks the worker sockets under ``lightgbm.dask`` (LightGBM issues
  #3712, #6197, #6351). Boosting therefore runs all rounds on the cluster and the best
  iteration is chosen afterwards, on the client, by replaying the validation loss tree by
  tree with the same patience rule as ``lightgbm.early_stopping``.
* Monotone constraints use LightGBM's ``basic`` method: ``intermediate``/``advanced`` need
  every feature's histogram on one machine, which data-parallel learning does not have.
  ``basic`` is stricter, so the business directions (lower ``on_hand`` never lowers risk,
  more ``backlog`` never shortens delivery) still hold by construction.

The delivery quantiles keep their monotone constraints too: like single-machine training
they use the pinball loss as a custom objective (LightGBM's built-in ``quantile`` objective
refuses monotone constraints); gradients are per row, so they work unchanged on each worker.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client
from feast import FeatureStore
from mlflow import MlflowClient

from features import catalog
from training.models import (
    BASE_PARAMS,
    DeliveryQuantileModel,
    StockoutRiskModel,
    fit_calibration,
)
from training.pipeline import (
    DELIVERY_MODEL,
    STOCKOUT_MODEL,
    TrainResult,
    delivery_split,
    evaluate_delivery,
    evaluate_stockout,
    stockout_split,
)

TRAINER = "lightgbm.dask"
#: LightGBM's distributed learners only support the ``basic`` monotone method.
MONOTONE_METHOD = "basic"
#: Same patience as the single-machine models' ``lgb.early_stopping`` callbacks.
STOCKOUT_PATIENCE = 40
DELIVERY_PATIENCE = 60
#: A worker with fewer rows than this adds network rounds but no useful histogram mass.
MIN_ROWS_PER_WORKER = 200
SHUFFLE_SEED = 7

HOW_TO_START = (
    "Start a cluster with `dask scheduler` (it prints its address, e.g. tcp://HOST:8786) "
    "and on each machine `dask worker tcp://HOST:8786`, then pass that address "
    "(routecast train --dask tcp://HOST:8786)."
)


class DaskClusterError(RuntimeError):
    """The Dask cluster cannot train: unreachable, or no workers attached."""


class SchedulerUnreachableError(DaskClusterError):
    """No Dask scheduler answered at the given address."""


class NoWorkersError(DaskClusterError):
    """The scheduler answered but no worker joined it in time."""


@contextmanager
def dask_client(
    scheduler: str | Client, *, timeout: float = 10.0, min_workers: int = 1
) -> Iterator[Client]:
    """Connect to an existing scheduler, wait for workers, and close the connection after.

    A ``Client`` passed in is used as is and left open: its owner decides its lifetime.
    """
    if isinstance(scheduler, Client):
        _wait_for_workers(scheduler, _address(scheduler), min_workers, timeout)
        yield scheduler
        return
    try:
        client = Client(scheduler, timeout=timeout, set_as_default=False)
    except (OSError, ValueError) as exc:
        raise SchedulerUnreachableError(
            f"cannot reach a Dask scheduler at {scheduler!r} within {timeout:g} s ({exc}). "
            + HOW_TO_START
        ) from exc
    try:
        _wait_for_workers(client, scheduler, min_workers, timeout)
        yield client
    finally:
        client.close()


def _wait_for_workers(client: Client, address: str, n: int, timeout: float) -> None:
    try:
        client.wait_for_workers(n, timeout=timeout)
    except TimeoutError as exc:
        raise NoWorkersError(
            f"the Dask scheduler at {address} has no workers after {timeout:g} s. " + HOW_TO_START
        ) from exc


def _address(client: Client) -> str:
    rpc = client.scheduler
    return "unknown" if rpc is None else str(rpc.address)


def _blocks(client: Client, n_rows: int) -> list[tuple[str, int, int]]:
    """(worker, start, stop): one contiguous row range per worker, as even as possible."""
    workers = sorted(client.ncores())
    n = max(1, min(len(workers), n_rows // MIN_ROWS_PER_WORKER))
    edges = np.linspace(0, n_rows, n + 1).astype(int)
    return [(workers[i], int(edges[i]), int(edges[i + 1])) for i in range(n)]


def _scatter(client: Client, array: np.ndarray, blocks: Sequence[tuple[str, int, int]]) -> da.Array:
    """Place each row block on its worker so LightGBM trains where the data already is.

    ``hash=False`` keeps identical blocks (e.g. a constant init score) as separate keys;
    hashed, they would collapse onto the first worker.
    """
    parts = []
    for worker, start, stop in blocks:
        chunk = np.ascontiguousarray(array[start:stop])
        future = client.scatter(chunk, workers=[worker], hash=False)
        parts.append(da.from_delayed(future, shape=chunk.shape, dtype=chunk.dtype))
    return da.concatenate(parts, axis=0)


def _matrix(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise KeyError(f"training frame lacks feature columns {missing}")
    return frame.loc[:, list(features)].to_numpy(dtype=np.float64)


def _params(
    params: Mapping[str, Any] | None, features: Sequence[str], monotone: Mapping[str, int]
) -> dict[str, Any]:
    # Dask sets num_threads per worker from its thread count; passing one only warns.
    merged = {k: v for k, v in {**BASE_PARAMS, **(params or {})}.items() if k != "num_threads"}
    return {
        **merged,
        "monotone_constraints": [int(monotone.get(f, 0)) for f in features],
        "monotone_constraints_method": MONOTONE_METHOD,
    }


def _fit_on_cluster(
    estimator: lgb.DaskLGBMClassifier | lgb.DaskLGBMRegressor,
    client: Client,
    x: np.ndarray,
    y: np.ndarray,
    features: Sequence[str],
    init_score: np.ndarray | None = None,
) -> lgb.Booster:
    """Scatter the rows, boost on the workers, and bring back a local booster.

    Rows are shuffled (seeded) first: training frames are time-ordered, and each worker
    proposes bin edges and bags from its own block, so every block should look alike.
    """
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(y))
    blocks = _blocks(client, len(y))
    dx, dy = _scatter(client, x[order], blocks), _scatter(client, y[order], blocks)
    dinit = None if init_score is None else _scatter(client, init_score[order], blocks)
    # lightgbm.dask waits on futures through distributed's *current* client; ours is not
    # registered as the global default, so make it current for the duration of the fit.
    with client.as_current(), warnings.catch_warnings():
        # The sklearn wrapper always carries n_jobs, which lightgbm.dask then drops loudly.
        warnings.filterwarnings("ignore", message="Parameter n_jobs will be ignored")
        estimator.fit(dx, dy, init_score=dinit, feature_name=list(features))
    booster: lgb.Booster = estimator.to_local().booster_
    return booster


def best_iteration(
    booster: lgb.Booster,
    x_valid: np.ndarray,
    loss: Callable[[np.ndarray], float],
    *,
    patience: int,
    base: float = 0.0,
) -> int:
    """Replay the validation loss one tree at a time and stop as ``lgb.early_stopping`` would.

    Returns the 1-based iteration with the lowest loss seen before ``patience`` rounds
    passed without a strict improvement.
    """
    raw = np.full(len(x_valid), base, dtype=np.float64)
    best_loss, best_i = np.inf, 0
    for i in range(booster.current_iteration()):
        raw += booster.predict(x_valid, raw_score=True, start_iteration=i, num_iteration=1)
        value = loss(raw)
        if value < best_loss:
            best_loss, best_i = value, i
        elif i - best_i >= patience:
            break
    return best_i + 1


def _logloss(y: np.ndarray) -> Callable[[np.ndarray], float]:
    y = np.asarray(y, dtype=np.float64)

    def loss(raw: np.ndarray) -> float:
        # log(1 + e^raw) - y * raw is the binary log loss on the margin, overflow-safe.
        return float(np.mean(np.logaddexp(0.0, raw) - y * raw))

    return loss


def _pinball(y: np.ndarray, alpha: float) -> Callable[[np.ndarray], float]:
    y = np.asarray(y, dtype=np.float64)

    def loss(pred: np.ndarray) -> float:
        diff = y - pred
        return float(np.mean(np.maximum(alpha * diff, (alpha - 1.0) * diff)))

    return loss


def pinball_objective(alpha: float) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
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


def fit_stockout_dask(
    train: pd.DataFrame,
    y: np.ndarray,
    *,
    scheduler: str | Client,
    valid: pd.DataFrame | None = None,
    y_valid: np.ndarray | None = None,
    features: Sequence[str] = catalog.STOCKOUT_FEATURES,
    monotone: Mapping[str, int] | None = None,
    num_boost_round: int = 400,
    params: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> StockoutRiskModel:
    """Fit the rejection-risk classifier on the cluster; returns the single-machine class.

    Mirrors ``StockoutRiskModel.fit``: the first half of the validation window picks the
    iteration, the second half calibrates the probabilities. ``monotone`` defaults to
    ``catalog.STOCKOUT_MONOTONE``; pass ``{}`` for none.
    """
    directions = catalog.STOCKOUT_MONOTONE if monotone is None else monotone
    model = StockoutRiskModel(
        features, monotone=directions, num_boost_round=num_boost_round, params=params
    )
    x = _matrix(train, model.features)
    labels = np.asarray(y, dtype=np.float64)
    with dask_client(scheduler, timeout=timeout) as client:
        estimator = lgb.DaskLGBMClassifier(
            client=client,
            objective="binary",
            n_estimators=num_boost_round,
            **_params(model.params, model.features, directions),
        )
        booster = _fit_on_cluster(estimator, client, x, labels, model.features)
    rounds = booster.current_iteration()
    x_stop, y_stop, x_cal, y_cal = _stopping_and_calibration(model.features, valid, y_valid)
    if x_stop is not None and y_stop is not None and len(y_stop):
        rounds = best_iteration(booster, x_stop, _logloss(y_stop), patience=STOCKOUT_PATIENCE)
    # __setstate__ is the path an unpickled single-machine model takes: same attributes,
    # booster rebuilt from the model string.
    model.__setstate__(
        {
            "model_str_": booster.model_to_string(num_iteration=rounds),
            "feature_names_": model.features,
            "best_iteration_": int(rounds),
            "calibration_": None,
        }
    )
    if x_cal is not None and y_cal is not None and len(np.unique(y_cal)) == 2:
        raw = np.asarray(model.booster_.predict(x_cal, num_threads=1), dtype=np.float64)
        model.calibration_ = fit_calibration(raw, y_cal)
    return model


def _stopping_and_calibration(
    features: Sequence[str], valid: pd.DataFrame | None, y_valid: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Split the time-ordered validation window as ``StockoutRiskModel.fit`` does.

    The first half picks the iteration, the second half (never seen by the booster)
    calibrates; below 400 rows all of it picks the iteration and nothing is calibrated.
    """
    if valid is None or y_valid is None:
        return None, None, None, None
    x = _matrix(valid, features)
    y = np.asarray(y_valid)
    half = len(y) // 2 if len(y) >= 400 else len(y)
    if half == len(y):
        return x, y, None, None
    return x[:half], y[:half], x[half:], y[half:]


def fit_delivery_dask(
    train: pd.DataFrame,
    y: np.ndarray,
    *,
    scheduler: str | Client,
    valid: pd.DataFrame | None = None,
    y_valid: np.ndarray | None = None,
    features: Sequence[str] = catalog.DELIVERY_FEATURES,
    monotone: Mapping[str, int] | None = None,
    num_boost_round: int = 400,
    params: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> DeliveryQuantileModel:
    """Fit the P50/P90 delivery boosters on the cluster; returns the single-machine class.

    Mirrors ``DeliveryQuantileModel.fit``: each quantile starts from its empirical value
    (init score), and with 50+ validation rows the P90 gets the split-conformal shift that
    makes it cover 90% of the validation window.
    """
    directions = catalog.DELIVERY_MONOTONE if monotone is None else monotone
    model = DeliveryQuantileModel(
        features, monotone=directions, num_boost_round=num_boost_round, params=params
    )
    x = _matrix(train, model.features)
    labels = np.asarray(y, dtype=np.float64)
    has_valid = valid is not None and y_valid is not None and len(y_valid) > 0
    x_valid = _matrix(valid, model.features) if valid is not None and has_valid else None
    yv = np.asarray(y_valid, dtype=np.float64) if has_valid else np.empty(0)
    model_strs: dict[float, str] = {}
    inits: dict[float, float] = {}
    rounds: dict[float, int] = {}
    with dask_client(scheduler, timeout=timeout) as client:
        for alpha in model.quantiles:
            init = float(np.quantile(labels, alpha))
            estimator = lgb.DaskLGBMRegressor(
                client=client,
                objective=pinball_objective(alpha),
                n_estimators=num_boost_round,
                **{
                    **_params(model.params, model.features, directions),
                    "min_sum_hessian_in_leaf": 1.0,
                },
            )
            booster = _fit_on_cluster(
                estimator, client, x, labels, model.features, np.full(len(labels), init)
            )
            n = booster.current_iteration()
            if x_valid is not None:
                n = best_iteration(
                    booster, x_valid, _pinball(yv, alpha), patience=DELIVERY_PATIENCE, base=init
                )
            model_strs[alpha] = booster.model_to_string(num_iteration=n)
            inits[alpha] = init
            rounds[alpha] = int(n)
    model.__setstate__(
        {
            "model_strs_": model_strs,
            "init_": inits,
            "best_iterations_": rounds,
            "feature_names_": model.features,
            "p90_offset_": 0.0,
        }
    )
    if x_valid is not None and len(yv) >= 50:
        _, p90 = model.predict_array(x_valid)
        model.p90_offset_ = float(np.quantile(yv - p90, 0.9))
    return model


def _dask_tags(client: Client) -> dict[str, str]:
    return {
        "trainer": TRAINER,
        "dask_scheduler": _address(client),
        "dask_workers": str(len(client.ncores())),
        "monotone_constraints_method": MONOTONE_METHOD,
    }


def train_stockout_dask(
    store: FeatureStore,
    raw_dir: Path,
    client_mlflow: MlflowClient | None,
    *,
    scheduler: str | Client,
    name: str = STOCKOUT_MODEL,
    max_rows: int | None = 200_000,
    num_boost_round: int = 400,
    timeout: float = 10.0,
) -> TrainResult:
    """``training.pipeline.train_stockout`` with the boosting done on a Dask cluster.

    The cluster is checked before the (slow) feature-store join so a wrong address fails fast.
    """
    with dask_client(scheduler, timeout=timeout) as client:
        split = stockout_split(store, raw_dir, max_rows=max_rows)
        model = fit_stockout_dask(
            split.train,
            split.train["label"].to_numpy(int),
            scheduler=client,
            valid=split.valid,
            y_valid=split.valid["label"].to_numpy(int),
            num_boost_round=num_boost_round,
            timeout=timeout,
        )
        tags = _dask_tags(client)
    return evaluate_stockout(split, model, client_mlflow, name=name, extra_tags=tags)


def train_delivery_dask(
    store: FeatureStore,
    raw_dir: Path,
    client_mlflow: MlflowClient | None,
    *,
    scheduler: str | Client,
    name: str = DELIVERY_MODEL,
    max_rows: int | None = 200_000,
    num_boost_round: int = 400,
    timeout: float = 10.0,
) -> TrainResult:
    """``training.pipeline.train_delivery`` with the boosting done on a Dask cluster."""
    with dask_client(scheduler, timeout=timeout) as client:
        split = delivery_split(store, raw_dir, max_rows=max_rows)
        model = fit_delivery_dask(
            split.train,
            split.train["label"].to_numpy(float),
            scheduler=client,
            valid=split.valid,
            y_valid=split.valid["label"].to_numpy(float),
            num_boost_round=num_boost_round,
            timeout=timeout,
        )
        tags = _dask_tags(client)
    return evaluate_delivery(split, model, client_mlflow, name=name, extra_tags=tags)


def train_all_dask(
    store: FeatureStore,
    raw_dir: Path,
    client_mlflow: MlflowClient | None,
    *,
    scheduler: str | Client,
    on_step: Callable[[str], None] | None = None,
    max_rows: int | None = 200_000,
    timeout: float = 10.0,
) -> list[TrainResult]:
    """Both models on one cluster connection, in the order of ``pipeline.train_all``."""
    jobs = (("stockout risk", train_stockout_dask), ("delivery days", train_delivery_dask))
    results = []
    with dask_client(scheduler, timeout=timeout) as client:
        for label, job in jobs:
            if on_step:
                on_step(label)
            results.append(job(store, raw_dir, client_mlflow, scheduler=client, max_rows=max_rows))
    return results
