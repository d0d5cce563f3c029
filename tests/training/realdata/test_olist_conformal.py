"""The Olist P90 band is measured out of fold, and the band measured is the one shipped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.calibration import BandTracker, CoverageMonitor
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


def test_band_covers_the_training_period_out_of_fold_and_ships_unchanged() -> None:
    frame = _drifting_frame()
    model = OlistDeliveryModel(OlistSettings(conformal_groups=())).fit(frame)
    q = model.model_.band_.pooled_.correction_
    # Out-of-fold P50s never saw their row, so the band is a real widening above 1.
    assert q > 1.2
    assert model.validation_["p90_coverage"] >= 0.9
    p50, p90 = model.predict(frame)
    assert np.allclose(p90, np.maximum(p50 * q, p50))
    assert (p50 <= p90).all()


def test_the_evaluation_and_production_share_one_p90_rule() -> None:
    """The evaluation's P90 is DeliveryQuantileModel's band, not a rule of its own."""
    frame = _drifting_frame()
    model = OlistDeliveryModel().fit(frame)
    x = frame.loc[:, list(FEATURES)].to_numpy(dtype=float)
    p50, p90 = model.predict(frame)
    assert np.allclose(p90, model.model_.upper(p50, x))
    ratio50, ratio90 = model.model_.predict_array(x)
    assert np.allclose(p90 / p50, ratio90 / ratio50)


def test_a_missing_level_falls_back_to_the_training_median() -> None:
    frame = _drifting_frame()
    model = OlistDeliveryModel().fit(frame)
    gap = frame.head(5).assign(**{LEVEL: np.nan})
    assert np.allclose(model._level(gap), model.fallback_level_)
    p50, p90 = model.predict(gap)
    assert np.isfinite(p50).all() and (p50 <= p90).all()


def _two_lanes() -> tuple[pd.DataFrame, np.ndarray]:
    """São Paulo → São Paulo (25>25) and São Paulo → Rio (25>18), as feature codes."""
    frame = _drifting_frame(n=2400)
    frame["origin_state_code"] = 25.0
    frame["dest_state_code"] = np.where(frame["dest_state"] == "RJ", 18.0, 25.0)
    return frame, (frame["dest_state"] == "RJ").to_numpy()


def test_each_busy_lane_gets_its_own_band_and_a_thin_lane_the_pooled_one() -> None:
    frame, far = _two_lanes()
    rng = np.random.default_rng(9)
    # The far lane is much more dispersed than anything the features explain.
    frame.loc[far, "label"] *= rng.choice([0.7, 2.2], far.sum())
    frame.loc[frame.index[:40], "dest_state_code"] = 2.0  # a lane too thin for its own band
    model = OlistDeliveryModel(OlistSettings(conformal_min_rows=200)).fit(frame)
    band = model.model_.band_
    assert set(band.corrections_) == {"25>25", "25>18"}
    assert band.corrections_["25>18"] > band.corrections_["25>25"] * 1.3
    p50, p90 = model.predict(frame)
    lanes = "25>" + frame["dest_state_code"].map("{:g}".format)
    for lane, q in (*band.corrections_.items(), ("25>2", band.pooled_.correction_)):
        rows = (lanes == lane).to_numpy()
        assert rows.any()
        assert np.allclose(p90[rows], np.maximum(p50[rows] * q, p50[rows]))


def test_the_floor_setting_allocates_levels_per_lane_and_keeps_the_aggregate() -> None:
    frame, far = _two_lanes()
    frame.loc[far, "label"] *= 2.5  # the far lane: long trips, so its coverage costs more
    settings = OlistSettings(conformal_min_rows=200, conformal_floor=0.85)
    model = OlistDeliveryModel(settings).fit(frame)
    levels = model.model_.band_.levels_
    assert levels["25>25"] > 0.9 > levels["25>18"] >= 0.85
    assert model.validation_["p90_coverage"] >= 0.9  # out of fold, all lanes together


def _promises(
    days: int = 120, per_day: int = 20, ratio: float = 0.6, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parcels promised 10 days that take ``ratio`` × 10 days give or take 20 %."""
    rng = np.random.default_rng(seed)
    bought = np.repeat(np.arange(days, dtype=float), per_day) + rng.uniform(0, 1, days * per_day)
    took = 10.0 * ratio * rng.uniform(0.8, 1.2, len(bought))
    return bought, bought + took, np.full(len(bought), 10.0)


def test_monitor_narrows_a_band_that_covers_too_much_and_widens_one_that_slips() -> None:
    monitor = CoverageMonitor(0.9, window_days=56, weight=1.0)
    fast = monitor.factors(*_promises(ratio=0.6), np.array([100.0]))
    slow = monitor.factors(*_promises(ratio=1.4), np.array([100.0]))
    assert 0.6 < fast[0] < 0.8  # the 90 % quantile of 0.6 × (0.8..1.2)
    assert 1.4 < slow[0] < 1.8
    half = CoverageMonitor(0.9, window_days=56, weight=0.5).factors(
        *_promises(ratio=0.6), np.array([100.0])
    )
    assert half[0] == pytest.approx(np.sqrt(fast[0]))


def test_monitor_sees_only_outcomes_known_that_morning() -> None:
    bought, arrived, band = _promises(ratio=1.4)
    at = np.array([100.0, 110.0])
    before = CoverageMonitor(0.9, window_days=56, weight=1.0).factors(bought, arrived, band, at)
    # Parcels still travelling on day 100 arrive far later: day 100 cannot know it.
    late = arrived > 100.0
    later = np.where(late, arrived + 30.0, arrived)
    after = CoverageMonitor(0.9, window_days=56, weight=1.0).factors(bought, later, band, at)
    assert after[0] == before[0]
    assert after[1] > before[1]


@pytest.mark.parametrize(
    "settings",
    [
        OlistSettings(conformal_groups=(), monitor_days=84.0, monitor_weight=1.0),
        OlistSettings(conformal_groups=(), tracker_step=0.002),
    ],
    ids=["monitor", "tracker"],
)
def test_monitored_band_never_uses_its_own_or_a_later_outcome(settings: OlistSettings) -> None:
    frame = _drifting_frame()
    cut = frame["event_timestamp"].iloc[1200]
    train, test = frame[frame["event_timestamp"] < cut], frame[frame["event_timestamp"] >= cut]
    model = OlistDeliveryModel(settings).fit(train)
    p90 = model.predict_monitored(test)[1]
    static = model.predict(test)[1]
    assert not np.allclose(p90, static)  # the monitor does move the band
    # Changing the last day's outcomes changes nothing before or on that day.
    last_day = test["event_timestamp"].dt.floor("D") == test["event_timestamp"].max().floor("D")
    changed = test.assign(label=np.where(last_day, test["label"] * 5.0, test["label"]))
    assert np.array_equal(model.predict_monitored(changed)[1], p90)
    # A shipment's own outcome only affects later days' bands.
    first = test.index[0]
    bumped = test.assign(label=test["label"].where(test.index != first, 500.0))
    moved = model.predict_monitored(bumped)[1]
    same_day = test["event_timestamp"].dt.floor("D") == test["event_timestamp"].iloc[0].floor("D")
    assert np.array_equal(moved[same_day.to_numpy()], p90[same_day.to_numpy()])


def test_tracker_widens_a_band_that_slips_and_narrows_one_that_covers_too_much() -> None:
    tracker = BandTracker(0.9, step=0.002)
    slow = tracker.factors(*_promises(ratio=1.4))
    fast = tracker.factors(*_promises(ratio=0.6))
    assert slow[-1] > 1.3 and fast[-1] < 0.75
    assert slow[:20].max() == fast[:20].max() == 1.0  # no outcome known on the first day
    capped = BandTracker(0.9, step=0.05, bounds=(0.8, 1.25)).factors(*_promises(ratio=3.0))
    assert capped.max() == pytest.approx(1.25)


def test_tracker_uses_an_outcome_only_from_the_close_of_the_day_it_became_known() -> None:
    bought, arrived, band = _promises(ratio=0.6)
    tracker = BandTracker(0.9, step=0.01)
    factors = tracker.factors(bought, arrived, band)
    # Parcel 0 (bought on day 0) arrived within its 10-day promise, on day 5 or 6 ...
    day = int(np.floor(arrived[0]))
    # ... now it never arrives: the miss is known once the promise date has passed.
    missed = arrived.copy()
    missed[0] = bought[0] + 40.0
    promised = int(np.floor(bought[0] + 10.0))
    moved = tracker.factors(bought, missed, band)
    changed = np.floor(bought[moved != factors])
    assert changed.min() == day + 1  # used from the close of its arrival day, not before
    # Covered, it narrowed the band a little from day + 1 on; missed, it widens it from
    # the day after its promise date.
    on_time = (np.floor(bought) > day) & (np.floor(bought) <= promised)
    assert (moved[on_time] > factors[on_time]).all()
    gap = moved / factors
    late = np.floor(bought) == promised + 1
    assert (gap[late] > gap[on_time].max()).all()


def test_tracker_steps_per_promise_so_uneven_daily_batches_do_not_bias_it() -> None:
    """Exactly one parcel in ten misses, but nothing arrives on one weekday while promise
    dates keep passing: that day's batch is all misses. Averaging each day's share would
    creep the band wider every week; stepping per promise keeps the factor level."""
    days, per_day = 300, 20
    bought = np.repeat(np.arange(days, dtype=float), per_day) + 0.25
    took = np.tile(np.r_[[100.0, 100.0], np.full(per_day - 2, 4.0)], days)
    arrived = bought + took
    closed = np.floor(arrived) % 7 == 6
    arrived[closed] = np.floor(arrived[closed]) + 1.5  # delivered the next morning instead
    factors = BandTracker(0.9, step=0.01).factors(bought, arrived, np.full(len(bought), 10.0))
    assert 0.85 < factors[-1] < 1.1


def test_monitor_and_tracker_are_exclusive() -> None:
    frame = _drifting_frame(n=400)
    settings = OlistSettings(conformal_groups=(), monitor_days=56.0, tracker_step=0.001)
    model = OlistDeliveryModel(settings).fit(frame.iloc[:300])
    with pytest.raises(ValueError, match="one of"):
        model.predict_monitored(frame.iloc[300:])
