"""Model behaviour on synthetic data: monotone where the business knows the direction,
quantiles never cross, probabilities in range, fit returns self."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from features import catalog
from training.models import DeliveryQuantileModel, StockoutRiskModel
from training.pipeline import DELIVERY_BAND


def _stockout_frame(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({c: rng.uniform(0, 10, n) for c in catalog.STOCKOUT_FEATURES})
    f["on_hand"] = rng.integers(0, 30, n).astype(float)
    f["qty"] = rng.integers(1, 4, n).astype(float)
    logit = -1.5 - 0.25 * f["on_hand"] + 0.6 * f["qty"] + 0.1 * f["days_since_count"]
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return f, y


def _delivery_frame(n: int = 3000, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({c: rng.uniform(0, 5, n) for c in catalog.DELIVERY_FEATURES})
    f["distance_km"] = rng.uniform(10, 4000, n)
    f["backlog"] = rng.integers(0, 200, n).astype(float)
    y = 1 + f["distance_km"] / 800 + f["backlog"] / 60 + rng.gamma(2.0, 0.6, n)
    return f, y.to_numpy()


@pytest.fixture(scope="module")
def stockout_model() -> StockoutRiskModel:
    f, y = _stockout_frame()
    m = StockoutRiskModel(
        catalog.STOCKOUT_FEATURES, monotone=catalog.STOCKOUT_MONOTONE, num_boost_round=80
    )
    assert m.fit(f, y) is m
    return m


@pytest.fixture(scope="module")
def delivery_model() -> DeliveryQuantileModel:
    f, y = _delivery_frame()
    m = DeliveryQuantileModel(
        catalog.DELIVERY_FEATURES,
        monotone=catalog.DELIVERY_MONOTONE,
        num_boost_round=80,
        num_threads=1,  # two OpenMP threads on a loaded two-core runner take minutes
        **DELIVERY_BAND,  # the production rule: CQR per weekday × node type
    )
    assert m.fit(f, y) is m
    return m


def test_stockout_probabilities_in_unit_interval(stockout_model: StockoutRiskModel) -> None:
    f, _ = _stockout_frame(500, seed=5)
    p = stockout_model.predict_proba(f)
    assert p.shape == (500,)
    assert np.all((p >= 0) & (p <= 1))


def test_lower_on_hand_never_lowers_risk(stockout_model: StockoutRiskModel) -> None:
    f, _ = _stockout_frame(200, seed=6)
    risks = []
    for on_hand in (30.0, 10.0, 3.0, 1.0, 0.0):
        risks.append(stockout_model.predict_proba(f.assign(on_hand=on_hand)))
    for higher_stock, lower_stock in itertools.pairwise(risks):
        assert np.all(lower_stock >= higher_stock - 1e-12)


def test_more_backlog_never_shortens_delivery(delivery_model: DeliveryQuantileModel) -> None:
    f, _ = _delivery_frame(200, seed=7)
    prev50 = prev90 = None
    for backlog in (0.0, 20.0, 80.0, 200.0):
        p50, p90 = delivery_model.predict_quantiles(f.assign(backlog=backlog))
        if prev50 is not None:
            assert np.all(p50 >= prev50 - 1e-9) and np.all(p90 >= prev90 - 1e-9)
        prev50, prev90 = p50, p90


def test_p50_never_above_p90(delivery_model: DeliveryQuantileModel) -> None:
    f, _ = _delivery_frame(1000, seed=8)
    p50, p90 = delivery_model.predict_quantiles(f)
    assert np.all(p50 <= p90)
    assert np.all(p50 >= 0)


def test_models_round_trip_through_pickle(
    stockout_model: StockoutRiskModel, delivery_model: DeliveryQuantileModel
) -> None:
    import pickle

    f, _ = _stockout_frame(50, seed=9)
    again = pickle.loads(pickle.dumps(stockout_model))
    np.testing.assert_allclose(again.predict_proba(f), stockout_model.predict_proba(f))
    d, _ = _delivery_frame(50, seed=9)
    again_d = pickle.loads(pickle.dumps(delivery_model))
    np.testing.assert_allclose(
        again_d.predict_quantiles(d)[1], delivery_model.predict_quantiles(d)[1]
    )


def test_missing_feature_column_is_named() -> None:
    f, y = _stockout_frame(100)
    with pytest.raises(KeyError, match="on_hand"):
        StockoutRiskModel(catalog.STOCKOUT_FEATURES).fit(f.drop(columns=["on_hand"]), y)


def test_calibration_on_unseen_rows_keeps_monotonicity() -> None:
    from training.metrics import expected_calibration_error

    f, y = _stockout_frame(6000, seed=11)
    train, valid, test = f.iloc[:3000], f.iloc[3000:5000], f.iloc[5000:]
    m = StockoutRiskModel(
        catalog.STOCKOUT_FEATURES, monotone=catalog.STOCKOUT_MONOTONE, num_boost_round=80
    )
    m.fit(train, y[:3000], valid, y[3000:5000])
    assert m.calibration_ is not None and m.calibration_.method_ in {"isotonic", "sigmoid"}
    p = m.predict_proba(test)
    assert np.all((p >= 0) & (p <= 1))
    assert expected_calibration_error(y[5000:], p) < 0.06
    lower = m.predict_proba(test.assign(on_hand=0.0))
    higher = m.predict_proba(test.assign(on_hand=20.0))
    assert np.all(lower >= higher - 1e-12)


def test_estimators_follow_scikit_learn_conventions(
    stockout_model: StockoutRiskModel, delivery_model: DeliveryQuantileModel
) -> None:
    """``__init__`` stores arguments only, so ``get_params``/``clone`` rebuild an unfitted twin."""
    from sklearn.base import clone

    for fitted in (stockout_model, delivery_model):
        params = fitted.get_params()
        assert params["monotone"] is fitted.monotone and params["num_boost_round"] == 80
        twin = clone(fitted)
        assert type(twin) is type(fitted) and twin.get_params().keys() == params.keys()
        assert not hasattr(twin, "feature_names_")
        assert type(fitted)(**params).get_params() == params


def test_p90_band_is_out_of_fold_and_per_group() -> None:
    """One node type far more dispersed than the features say gets its own, wider band,
    and fresh rows are covered about 90 % in each group."""

    def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        f, y = _delivery_frame(n, seed)
        rng = np.random.default_rng(seed + 100)
        f["node_type_code"] = rng.integers(0, 2, n).astype(float)
        wild = f["node_type_code"].to_numpy() == 1.0
        y = np.where(wild, y * rng.choice([0.6, 2.0], n), y)
        return f, y

    f, y = frame(4000, 1)
    m = DeliveryQuantileModel(
        catalog.DELIVERY_FEATURES,
        monotone=catalog.DELIVERY_MONOTONE,
        num_boost_round=80,
        num_threads=1,
        band_groups=("node_type_code",),
    ).fit(f, y)
    bands = m.band_.corrections_
    assert set(bands) == {"0", "1"} and bands["1"] > bands["0"] * 1.3
    ft, yt = frame(4000, 2)
    p50, p90 = m.predict_quantiles(ft)
    for code in (0.0, 1.0):
        rows = ft["node_type_code"].to_numpy() == code
        assert 0.86 <= float(np.mean(yt[rows] <= p90[rows])) <= 0.94
        assert np.allclose(p90[rows], np.maximum(p50[rows] * bands[f"{code:g}"], p50[rows]))


def test_production_band_follows_the_features_and_covers_each_group() -> None:
    """CQR (the production rule): where parcels are more dispersed, a node type or a long
    trip, the P90 ÷ P50 of the same order is wider, and each group is covered about 90 %."""

    def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        f, _ = _delivery_frame(n, seed)
        rng = np.random.default_rng(seed + 200)
        f["weekday"] = rng.integers(0, 2, n).astype(float)
        f["node_type_code"] = rng.integers(0, 2, n).astype(float)
        centre = 1 + f["distance_km"].to_numpy() / 800
        spread = 0.15 + 0.35 * f["node_type_code"].to_numpy() + f["distance_km"].to_numpy() / 8000
        return f, centre * np.exp(spread * rng.standard_normal(n))

    f, y = frame(6000, 3)
    m = DeliveryQuantileModel(
        catalog.DELIVERY_FEATURES,
        monotone=catalog.DELIVERY_MONOTONE,
        num_boost_round=80,
        params={"learning_rate": 0.2},
        num_threads=1,
    ).set_params(**DELIVERY_BAND)
    m.fit(f.iloc[:5000], y[:5000], f.iloc[5000:], y[5000:])
    assert len(m.band_.corrections_) == 4  # weekday × node type, each with >= 300 rows
    # One order, four candidate nodes: two node types at two distances.
    order = f.iloc[[0] * 4].assign(
        node_type_code=[0.0, 1.0, 0.0, 1.0], distance_km=[100.0, 100.0, 3000.0, 3000.0]
    )
    p50, p90 = m.predict_quantiles(order)
    ratio = p90 / p50
    assert ratio[1] > ratio[0] * 1.2 and ratio[3] > ratio[2] * 1.2  # the wilder node type
    assert ratio[2] > ratio[0] and ratio[3] > ratio[1]  # the longer trip
    ft, yt = frame(8000, 4)
    p50, p90 = m.predict_quantiles(ft)
    groups = m.groups(ft.loc[:, list(catalog.DELIVERY_FEATURES)].to_numpy(float))
    for g in np.unique(groups):
        rows = groups == g
        assert 0.86 <= float(np.mean(yt[rows] <= p90[rows])) <= 0.94, g
