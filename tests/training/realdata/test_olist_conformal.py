"""The Olist P90 band is measured out of fold, and the band measured is the one shipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.realdata.olist_eval import FEATURES, LEVEL, OlistDeliveryModel, OlistSettings


def _drifting_frame(n: int = 1600, days: int = 200, seed: int = 3) -> pd.DataFrame:
    """Delivery days whose last six weeks are 1.6x slower than anything the features say."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2017-06-01", tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, days, n)), unit="D"
    )
    frame = pd.DataFrame({f: rng.normal(size=n) for f in FEATURES})
    frame["distance_km"] = rng.uniform(10, 2000, n)
    frame[LEVEL] = 10.0
    slow = ts >= ts.max() - pd.Timedelta(days=42)
    frame["label"] = 10.0 * rng.gamma(6.0, 1 / 6.0, n) * np.where(slow, 1.6, 1.0)
    frame["event_timestamp"] = ts
    frame["origin_state"] = "SP"
    frame["dest_state"] = rng.choice(["SP", "RJ"], n)
    return frame


@pytest.mark.parametrize("half_life", [None, 7.0])
def test_band_covers_the_training_period_out_of_fold_and_ships_unchanged(
    half_life: float | None,
) -> None:
    frame = _drifting_frame()
    settings = OlistSettings(conformal_half_life=half_life, conformal_groups=None)
    model = OlistDeliveryModel(settings).fit(frame)
    # Out-of-fold P50s never saw their row, so the band is a real widening above 1.
    assert model.conformal_.correction_ > 1.2
    assert model.validation_["p90_coverage"] >= 0.9
    p50, p90 = model.predict(frame)
    assert np.allclose(p90, np.maximum(p50 * model.conformal_.correction_, p50))
    assert (p50 <= p90).all()


def test_recency_weights_widen_the_band_when_the_last_weeks_are_slow() -> None:
    frame = _drifting_frame()
    equal = OlistDeliveryModel(OlistSettings(conformal_half_life=None)).fit(frame)
    recent = OlistDeliveryModel(OlistSettings(conformal_half_life=7.0)).fit(frame)
    assert recent.conformal_.correction_ > equal.conformal_.correction_


def test_a_missing_level_falls_back_to_the_training_median() -> None:
    frame = _drifting_frame()
    model = OlistDeliveryModel().fit(frame)
    gap = frame.head(5).assign(**{LEVEL: np.nan})
    assert np.allclose(model._level(gap), model.fallback_level_)
    p50, p90 = model.predict(gap)
    assert np.isfinite(p50).all() and (p50 <= p90).all()


def test_each_busy_lane_gets_its_own_band_and_a_thin_lane_the_pooled_one() -> None:
    frame = _drifting_frame(n=2400)
    rng = np.random.default_rng(9)
    far = (frame["dest_state"] == "RJ").to_numpy()
    # The far lane is much more dispersed than anything the features explain.
    frame.loc[far, "label"] *= rng.choice([0.7, 2.2], far.sum())
    frame.loc[frame.index[:40], "dest_state"] = "AM"  # a lane too thin for its own band
    model = OlistDeliveryModel(OlistSettings(conformal_min_rows=200)).fit(frame)
    bands = model.lane_conformal_.corrections_
    assert set(bands) == {"SP>SP", "SP>RJ"}
    assert bands["SP>RJ"] > bands["SP>SP"] * 1.3
    p50, p90 = model.predict(frame)
    lanes = frame["origin_state"] + ">" + frame["dest_state"]
    for lane, q in (*bands.items(), ("SP>AM", model.lane_conformal_.pooled_.correction_)):
        rows = (lanes == lane).to_numpy()
        assert np.allclose(p90[rows], np.maximum(p50[rows] * q, p50[rows]))
