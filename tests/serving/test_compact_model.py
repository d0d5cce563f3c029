"""The compact (prediction-only) form of a champion predicts exactly what the full model
predicts, is written only when it does, and is not read once the prediction code changed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import catalog
from serving import compact_model
from training.models import DeliveryQuantileModel, StockoutRiskModel


def _frame(features: tuple[str, ...] | list[str], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: rng.uniform(0, 10, n) for c in features})


def _stockout(valid_rows: int) -> StockoutRiskModel:
    f = _frame(catalog.STOCKOUT_FEATURES, 2000 + valid_rows, 0)
    logit = -2 + 0.3 * f[catalog.STOCKOUT_FEATURES[0]] - 0.2 * f[catalog.STOCKOUT_FEATURES[1]]
    y = (np.random.default_rng(1).uniform(size=len(f)) < 1 / (1 + np.exp(-logit))).astype(int)
    m = StockoutRiskModel(catalog.STOCKOUT_FEATURES, num_boost_round=30, num_threads=1)
    return m.fit(f[:2000], y[:2000], f[2000:], y[2000:])


@pytest.fixture(scope="module", params=["p50", "p90"])  # the P50 band, then CQR
def delivery(request: pytest.FixtureRequest) -> DeliveryQuantileModel:
    feats = list(catalog.DELIVERY_FEATURES)
    f = _frame(feats, 3000, 2)
    f[feats[0]] = np.random.default_rng(3).integers(0, 4, len(f)).astype(float)  # band groups
    y = 1 + f[feats[1]] / 3 + f[feats[0]] * np.random.default_rng(4).gamma(2.0, 0.6, len(f))
    m = DeliveryQuantileModel(
        feats,
        num_boost_round=30,
        num_threads=1,
        band_groups=(feats[0],),
        band_min_rows=300,
        band_on=request.param,
    )
    return m.fit(f[:2400], y[:2400].to_numpy(), f[2400:], y[2400:].to_numpy())


@pytest.mark.parametrize("valid_rows", [3000, 400])  # isotonic, then Platt's sigmoid
def test_stockout_compact_form_predicts_exactly_the_model(valid_rows: int) -> None:
    model = _stockout(valid_rows)
    found = compact_model.verified_compact(model)
    assert found is not None
    texts, meta = found
    expected = "isotonic" if valid_rows >= 2000 else "sigmoid"
    assert meta["calibration"]["method"] == expected
    compact = compact_model.build(texts, meta)
    x = _frame(catalog.STOCKOUT_FEATURES, 500, 9).to_numpy()
    np.testing.assert_array_equal(compact.predict_array(x), model.predict_array(x))
    np.testing.assert_array_equal(  # float32 input, as LightGBM takes it
        compact.predict_array(x.astype(np.float32)), model.predict_array(x.astype(np.float32))
    )


def test_delivery_compact_form_predicts_exactly_the_model(delivery: DeliveryQuantileModel) -> None:
    assert len(delivery.band_.corrections_) >= 2  # groups of their own, and the pooled band
    found = compact_model.verified_compact(delivery)
    assert found is not None
    assert ("booster90" in found[0]) == (delivery.band_on == "p90")
    compact = compact_model.build(*found)
    x = _frame(catalog.DELIVERY_FEATURES, 500, 11).to_numpy()
    x[:, 0] = np.arange(500) % 6  # known groups 0-3 and unknown 4, 5
    for a, b in zip(compact.predict_array(x), delivery.predict_array(x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_compact_form_that_differs_is_not_offered(delivery: DeliveryQuantileModel) -> None:
    changed = DeliveryQuantileModel.__new__(DeliveryQuantileModel)
    changed.__dict__.update(delivery.__dict__)
    changed.init_ = delivery.init_  # same state, but a prediction rule the module lacks:
    changed.predict_array = lambda x: (delivery.predict_array(x)[0] + 1e-9, x[:, 0])  # type: ignore[method-assign]
    assert compact_model.verified_compact(changed) is None
    assert compact_model.describe(object()) is None


def test_written_form_is_read_back_only_under_the_same_prediction_code(
    delivery: DeliveryQuantileModel, tmp_path: Path
) -> None:
    found = compact_model.verified_compact(delivery)
    assert found is not None
    compact_model.write(tmp_path, *found)
    back = compact_model.read(tmp_path)
    assert back is not None
    x = _frame(catalog.DELIVERY_FEATURES, 50, 12).to_numpy()
    np.testing.assert_array_equal(back.predict_array(x)[1], delivery.predict_array(x)[1])

    meta = json.loads((tmp_path / "compact.json").read_text())
    (tmp_path / "compact.json").write_text(json.dumps({**meta, "rules": "other code"}))
    assert compact_model.read(tmp_path) is None
    assert compact_model.read(tmp_path / "absent") is None
