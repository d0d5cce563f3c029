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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import dask.array as da
import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client
from feast import FeatureStore
from mlflow import MlflowClient

from training.config import TrainingConfig
from training.models import BoostJob, DeliveryQuantileModel, StockoutRiskModel
from training.pipeline import TrainResult, train_all

Estimator = TypeVar("Estimator", StockoutRiskModel, DeliveryQuantileModel)

TRAINER = "lightgbm.dask"
#: LightGBM's distributed learners only support the ``basic`` monotone method.
MONOTONE_METHOD = "basic"
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


class DaskBackend:
    """Grows the booster on a Dask cluster; the best iteration is replayed afterwards."""

    monotone_method = MONOTONE_METHOD

    def __init__(self, client: Client) -> None:
        self.client = client

    def boost(self, job: BoostJob) -> tuple[lgb.Booster, int]:
        # Dask sets num_threads per worker from its thread count; passing one only warns.
        # There is no validation set on the cluster, so no metric either.
        drop = ("num_threads", "metric", "alpha")
        kwargs = {k: v for k, v in job.params.items() if k not in drop}
        kind = lgb.DaskLGBMClassifier if kwargs["objective"] == "binary" else lgb.DaskLGBMRegressor
        estimator = kind(client=self.client, n_estimators=job.rounds, **kwargs)
        start = job.start(len(job.y))
        booster = _fit_on_cluster(estimator, self.client, job.x, job.y, job.feature_names, start)
        best = booster.current_iteration()
        if job.valid is not None and job.loss is not None and len(job.valid[1]):
            x_valid, base = job.valid[0], job.init or 0.0
            best = best_iteration(booster, x_valid, job.loss, patience=job.patience, base=base)
        return booster, int(best)

    def tags(self) -> dict[str, str]:
        """What the registry records about where a model was trained."""
        return {
            "trainer": TRAINER,
            "dask_scheduler": _address(self.client),
            "dask_workers": str(len(self.client.ncores())),
            "monotone_constraints_method": MONOTONE_METHOD,
        }


def fit_dask(
    estimator: Estimator,
    train: pd.DataFrame,
    y: np.ndarray,
    *,
    scheduler: str | Client,
    valid: pd.DataFrame | None = None,
    y_valid: np.ndarray | None = None,
    timeout: float = 10.0,
) -> Estimator:
    """``estimator.fit`` with its boosting on the cluster: same rules, another backend."""
    with dask_client(scheduler, timeout=timeout) as client:
        estimator.set_params(backend=DaskBackend(client))
        return estimator.fit(train, y, valid, y_valid)  # type: ignore[return-value]


def train_all_dask(
    store: FeatureStore,
    raw_dir: Path,
    client_mlflow: MlflowClient | None,
    *,
    scheduler: str | Client,
    config: TrainingConfig | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout: float = 10.0,
) -> list[TrainResult]:
    """``pipeline.train_all`` with the boosting on one cluster connection.

    The cluster is checked before the (slow) feature-store join so a wrong address fails fast.
    """
    with dask_client(scheduler, timeout=timeout) as client:
        return train_all(
            store,
            raw_dir,
            client_mlflow,
            config=config,
            on_step=on_step,
            backend=DaskBackend(client),
        )
