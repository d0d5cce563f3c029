"""lightgbm.dask training on a real (in-process) Dask cluster reached by its TCP address:
same quality and behaviour as single-machine training, same model classes, clear errors."""

from __future__ import annotations

import itertools
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from features import catalog
from training import pipeline
from training.config import TrainingConfig
from training.datasets import Split
from training.distributed import (
    DaskBackend,
    NoWorkersError,
    SchedulerUnreachableError,
    best_iteration,
    dask_client,
    fit_dask,
)
from training.metrics import pinball_loss
from training.models import (
    DeliveryQuantileModel,
    StockoutRiskModel,
    binary_logloss,
    pinball_objective,
)

ROUNDS = 80


def _stockout_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({c: rng.uniform(0, 10, n) for c in catalog.STOCKOUT_FEATURES})
    f["on_hand"] = rng.integers(0, 30, n).astype(float)
    f["qty"] = rng.integers(1, 4, n).astype(float)
    logit = -1.5 - 0.25 * f["on_hand"] + 0.6 * f["qty"] + 0.1 * f["days_since_count"]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return f, y


def _delivery_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({c: rng.uniform(0, 5, n) for c in catalog.DELIVERY_FEATURES})
    f["distance_km"] = rng.uniform(10, 4000, n)
    f["backlog"] = rng.integers(0, 200, n).astype(float)
    y = 1 + f["distance_km"] / 800 + f["backlog"] / 60 + rng.gamma(2.0, 0.6, n)
    return f, y.to_numpy()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """Two single-thread workers behind a TCP scheduler: reached exactly like a remote one.

    Threads, not processes: worker processes cost seconds each to spawn on two busy cores,
    while LightGBM's socket network between the workers is the same either way.
    """
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
    ) as cluster:
        yield str(cluster.scheduler_address)


@pytest.fixture(scope="module")
def stockout_pair(scheduler: str) -> tuple[StockoutRiskModel, StockoutRiskModel]:
    """(distributed, single-machine) fitted on the same rows with the same validation."""
    f, y = _stockout_frame(4000, seed=0)
    fv, yv = _stockout_frame(1000, seed=1)

    def model() -> StockoutRiskModel:
        return StockoutRiskModel(
            catalog.STOCKOUT_FEATURES, monotone=catalog.STOCKOUT_MONOTONE, num_boost_round=ROUNDS
        )

    dask_model = fit_dask(model(), f, y, scheduler=scheduler, valid=fv, y_valid=yv)
    local = model().fit(f, y, fv, yv)
    return dask_model, local


@pytest.mark.slow
def test_stockout_auc_matches_single_machine(
    stockout_pair: tuple[StockoutRiskModel, StockoutRiskModel],
) -> None:
    dask_model, local = stockout_pair
    ft, yt = _stockout_frame(3000, seed=2)
    auc_dask = roc_auc_score(yt, dask_model.predict_proba(ft))
    auc_local = roc_auc_score(yt, local.predict_proba(ft))
    assert auc_dask > 0.8
    assert abs(auc_dask - auc_local) <= 0.02


@pytest.mark.slow
def test_stockout_outputs_calibrated_probabilities(
    stockout_pair: tuple[StockoutRiskModel, StockoutRiskModel],
) -> None:
    dask_model, _ = stockout_pair
    ft, yt = _stockout_frame(3000, seed=3)
    p = dask_model.predict_proba(ft)
    assert p.shape == (3000,)
    assert np.all((p >= 0) & (p <= 1))
    assert dask_model.calibration_ is not None  # 1000 validation rows: half calibrates
    assert abs(p.mean() - yt.mean()) < 0.03


@pytest.mark.slow
def test_stockout_lower_on_hand_never_lowers_risk(
    stockout_pair: tuple[StockoutRiskModel, StockoutRiskModel],
) -> None:
    dask_model, _ = stockout_pair
    f, _ = _stockout_frame(200, seed=4)
    risks = [dask_model.predict_proba(f.assign(on_hand=v)) for v in (30.0, 10.0, 3.0, 1.0, 0.0)]
    for higher_stock, lower_stock in itertools.pairwise(risks):
        assert np.all(lower_stock >= higher_stock - 1e-12)


@pytest.mark.slow
def test_stockout_model_is_the_single_machine_class_and_pickles(
    stockout_pair: tuple[StockoutRiskModel, StockoutRiskModel],
) -> None:
    dask_model, _ = stockout_pair
    assert type(dask_model) is StockoutRiskModel
    f, _ = _stockout_frame(50, seed=5)
    again = pickle.loads(pickle.dumps(dask_model))
    np.testing.assert_allclose(again.predict_proba(f), dask_model.predict_proba(f))
    x = f.loc[:, list(catalog.STOCKOUT_FEATURES)].to_numpy(float)
    np.testing.assert_allclose(again.predict_array(x), dask_model.predict_proba(f))
    assert set(dask_model.feature_importance()) == set(catalog.STOCKOUT_FEATURES)
    assert 1 <= dask_model.best_iteration_ <= ROUNDS
    assert dask_model.booster_.num_trees() == dask_model.best_iteration_


@pytest.mark.slow
def test_stockout_booster_was_built_by_both_workers(
    stockout_pair: tuple[StockoutRiskModel, StockoutRiskModel],
) -> None:
    dask_model, _ = stockout_pair
    text = dask_model.model_str_
    assert "[num_machines: 2]" in text and "[tree_learner: data]" in text
    assert "feature_names=" + " ".join(catalog.STOCKOUT_FEATURES) in text


@pytest.mark.slow
def test_delivery_quantiles_on_cluster_stay_monotone_and_match_quality(scheduler: str) -> None:
    f, y = _delivery_frame(3000, seed=1)
    fv, yv = _delivery_frame(600, seed=2)
    local = DeliveryQuantileModel(
        catalog.DELIVERY_FEATURES,
        monotone=catalog.DELIVERY_MONOTONE,
        num_boost_round=150,
        **pipeline.DELIVERY_BAND,  # what train_all_dask fits: the P90 booster is grown there too
    )
    model = fit_dask(clone(local), f, y, scheduler=scheduler, valid=fv, y_valid=yv)
    local.fit(f, y, fv, yv)
    assert type(model) is DeliveryQuantileModel
    ft, yt = _delivery_frame(2000, seed=3)
    p50, p90 = model.predict_quantiles(ft)
    l50, _ = local.predict_quantiles(ft)
    assert np.all((p50 >= 0) & (p50 <= p90))
    assert pinball_loss(yt, p50, 0.5) <= 1.05 * pinball_loss(yt, l50, 0.5)
    assert 0.85 <= float(np.mean(yt <= p90)) <= 0.95
    prev: tuple[np.ndarray, np.ndarray] | None = None
    for backlog in (0.0, 20.0, 80.0, 200.0):
        cur = model.predict_quantiles(ft.iloc[:200].assign(backlog=backlog))
        if prev is not None:
            assert np.all(cur[0] >= prev[0] - 1e-9) and np.all(cur[1] >= prev[1] - 1e-9)
        prev = cur
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict_quantiles(ft)[1], p90)


@pytest.mark.slow
def test_train_stockout_dask_registers_with_trainer_tags(
    scheduler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.registry import configure

    def frame(n: int, seed: int, start: str) -> pd.DataFrame:
        f, y = _stockout_frame(n, seed)
        ts = pd.date_range(start, periods=n, freq="min", tz="UTC")
        # the entity key the feature store's frames carry (the review reports metrics per node)
        nodes = [f"N{i % 7}" for i in range(n)]
        return f.assign(node_id=nodes, label=y, event_timestamp=ts)

    split = Split(
        train=frame(2000, 10, "2024-01-01"),
        valid=frame(500, 11, "2024-01-03"),
        test=frame(500, 12, "2024-01-04"),
    )
    monkeypatch.setattr(pipeline, "training_split", lambda *a, **k: split)
    client = configure(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    with dask_client(scheduler) as dask:
        result = pipeline.train_stockout(
            None,  # type: ignore[arg-type]  # the split is stubbed; no feature store needed
            tmp_path,
            client,
            config=TrainingConfig(stockout_model="dask-test-stockout", num_boost_round=40),
            backend=DaskBackend(dask),
        )
    assert set(result.metrics) == {"model", "baseline_on_hand_rule", "baseline_logistic"}
    assert result.metrics["model"]["auc"] > 0.8
    assert result.version is not None and result.version.aliases == ("champion",)
    tags = client.get_model_version("dask-test-stockout", result.version.version).tags
    assert tags["trainer"] == "lightgbm.dask"
    assert tags["dask_scheduler"] == scheduler
    assert tags["dask_workers"] == "2"
    logged = client.get_run(result.version.run_id).data.metrics
    assert logged["auc"] == pytest.approx(result.metrics["model"]["auc"])


def test_replayed_best_iteration_equals_lightgbm_early_stopping() -> None:
    f, y = _stockout_frame(2000, seed=6)
    fv, yv = _stockout_frame(600, seed=7)
    x, xv = (d.loc[:, list(catalog.STOCKOUT_FEATURES)].to_numpy(float) for d in (f, fv))
    params = {"objective": "binary", "learning_rate": 0.3, "verbose": -1, "deterministic": True}
    params |= {"num_threads": 1, "seed": 1}
    stopped = lgb.train(
        params,
        lgb.Dataset(x, label=y),
        300,
        valid_sets=[lgb.Dataset(xv, label=yv)],
        callbacks=[lgb.early_stopping(10, verbose=False)],
    )
    full = lgb.train(params, lgb.Dataset(x, label=y), 300)
    assert stopped.best_iteration < 300  # a fast learning rate overfits: stopping triggers
    replayed = best_iteration(full, xv, binary_logloss(yv), patience=10)
    assert replayed == stopped.best_iteration


def test_unreachable_scheduler_says_how_to_start_one() -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    f, y = _stockout_frame(300, seed=8)
    with pytest.raises(SchedulerUnreachableError) as err:
        model = StockoutRiskModel(catalog.STOCKOUT_FEATURES, num_boost_round=5)
        fit_dask(model, f, y, scheduler=address, timeout=1.0)
    message = str(err.value)
    assert address in message
    assert "dask scheduler" in message and "dask worker" in message


def test_scheduler_without_workers_is_reported() -> None:
    with (
        LocalCluster(
            n_workers=0, processes=False, protocol="tcp://", dashboard_address=None
        ) as cluster,
        pytest.raises(NoWorkersError, match="dask worker"),
        dask_client(cluster.scheduler_address, timeout=0.5),
    ):
        pass


def test_a_client_passed_in_stays_open(scheduler: str) -> None:
    with Client(scheduler, set_as_default=False) as client:
        with dask_client(client) as used:
            assert used is client
        assert client.status == "running"


def test_pinball_objective_reaches_workers_without_routecast() -> None:
    """Workers of an existing cluster may lack routecast: the objective travels by value."""
    import subprocess
    import sys

    from distributed.protocol import pickle as dask_pickle

    blob = dask_pickle.dumps(pinball_objective(0.9))
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('training', 'features', 'routing', 'serving'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from distributed.protocol import pickle as dask_pickle\n"
        "objective = dask_pickle.loads(sys.stdin.buffer.read())\n"
        "grad, hess = objective(np.array([1.0, 3.0]), np.array([2.0, 2.0]))\n"
        "print(*np.round(grad, 6), *hess)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=blob, capture_output=True, cwd="/", check=True
    )
    # Label below the prediction pushes down by 1 - alpha, above it pushes up by alpha.
    assert [float(v) for v in out.stdout.split()] == [0.1, -0.9, 1.0, 1.0]
