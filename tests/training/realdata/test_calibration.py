"""Held-out calibration: method choice, better calibration, conformal coverage."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import ConformalUpper, GroupConformalUpper, ProbabilityCalibrator
from training.metrics import expected_calibration_error


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n)
    y = (rng.random(n) < truth).astype(int)
    return np.sqrt(truth), y  # over-confident scores, monotone in the truth


def test_isotonic_for_large_sigmoid_for_small_sets() -> None:
    scores, y = _miscalibrated(5000, 0)
    assert ProbabilityCalibrator().fit(scores, y).method_ == "isotonic"
    assert ProbabilityCalibrator().fit(scores[:200], y[:200]).method_ == "sigmoid"


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_lowers_ece_on_fresh_data(method: str) -> None:
    scores, y = _miscalibrated(5000, 1)
    test_scores, test_y = _miscalibrated(5000, 2)
    calibrator = ProbabilityCalibrator(method).fit(scores, y)  # type: ignore[arg-type]
    before = expected_calibration_error(test_y, test_scores)
    after = expected_calibration_error(test_y, calibrator.predict(test_scores))
    assert after < before / 2


def test_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="both classes"):
        ProbabilityCalibrator().fit(np.array([0.2, 0.4]), np.array([1, 1]))


@pytest.mark.parametrize("mode", ["additive", "multiplicative"])
def test_conformal_upper_reaches_coverage_on_new_draws(mode: str) -> None:
    rng = np.random.default_rng(4)
    upper = np.full(4000, 5.0)  # far too low an upper quantile
    y = rng.gamma(4.0, 2.0, 4000)
    conformal = ConformalUpper(0.9, mode).fit(y[:2000], upper[:2000])  # type: ignore[arg-type]
    coverage = np.mean(y[2000:] <= conformal.predict(upper[2000:]))
    assert 0.87 <= coverage <= 0.93


def test_weighted_conformal_follows_the_recent_rows() -> None:
    rng = np.random.default_rng(5)
    old, recent = rng.gamma(4.0, 1.0, 3000), rng.gamma(4.0, 3.0, 3000)
    y = np.concatenate([old, recent])
    weights = np.concatenate([np.full(3000, 1e-3), np.ones(3000)])
    upper = np.ones(len(y))
    weighted = ConformalUpper(0.9, "multiplicative").fit(y, upper, weights)
    assert abs(weighted.correction_ - np.quantile(recent, 0.9)) < 0.05 * np.quantile(recent, 0.9)
    pooled = ConformalUpper(0.9, "multiplicative").fit(y, upper)
    assert weighted.correction_ > pooled.correction_


def test_equal_weights_give_the_split_conformal_order_statistic() -> None:
    y = np.random.default_rng(6).gamma(4.0, 2.0, 999)
    upper = np.full(len(y), 2.0)
    equal = ConformalUpper(0.9).fit(y, upper, np.ones(len(y)))
    k = int(np.ceil(0.9 * (len(y) + 1)))  # the k-th smallest score of n held-out rows
    assert equal.correction_ == np.sort(y - upper)[k - 1]
    plain = ConformalUpper(0.9).fit(y, upper)
    assert abs(plain.correction_ - equal.correction_) < 0.05


def test_bad_conformal_weights_are_refused() -> None:
    y, upper = np.ones(3), np.ones(3)
    with pytest.raises(ValueError, match="weights"):
        ConformalUpper(0.9).fit(y, upper, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="weights"):
        ConformalUpper(0.9).fit(y, upper, np.ones(2))


def test_group_conformal_covers_each_group_not_only_the_pooled_rows() -> None:
    rng = np.random.default_rng(4)
    n = 6000
    groups = rng.choice(["tight", "wide", "rare"], n, p=[0.6, 0.38, 0.02])
    spread = np.where(groups == "wide", 3.0, 1.0)
    upper = np.full(n, 5.0)
    y = 5.0 * rng.lognormal(0.0, 0.15 * spread)
    fitted = GroupConformalUpper(0.9, "multiplicative", min_rows=300).fit(y, upper, groups)
    assert set(fitted.corrections_) == {"tight", "wide"}
    pooled = ConformalUpper(0.9, "multiplicative").fit(y, upper)
    assert fitted.pooled_.correction_ == pooled.correction_
    fresh = 5.0 * rng.lognormal(0.0, 0.15 * spread)
    band = fitted.predict(upper, groups)
    for g in ("tight", "wide"):
        assert np.mean(fresh[groups == g] <= band[groups == g]) == pytest.approx(0.9, abs=0.03)
    # One pooled band over-covers the tight group and under-covers the wide one.
    one = pooled.predict(upper)
    assert np.mean(fresh[groups == "wide"] <= one[groups == "wide"]) < 0.85
    assert (band[groups == "rare"] == one[groups == "rare"]).all()


def test_allocated_levels_honour_the_aggregate_and_the_floor_with_a_shorter_band() -> None:
    """Short trips are cheap to cover: the aggregate target is met with higher levels
    there and lower (never below the floor) on long ones, for fewer days of band."""
    rng = np.random.default_rng(7)
    n = 8000
    groups = rng.choice(["short", "long", "thin1", "thin2"], n, p=[0.6, 0.37, 0.015, 0.015])
    upper = np.where(groups == "long", 20.0, 4.0)  # the P50 the band multiplies

    def draw() -> np.ndarray:
        return upper * rng.lognormal(0.0, 0.5, n)

    y = draw()
    allocated = GroupConformalUpper(0.9, "multiplicative", 300, floor=0.85).fit(y, upper, groups)
    one_level = GroupConformalUpper(0.9, "multiplicative", 300).fit(y, upper, groups)
    levels = allocated.levels_
    assert set(allocated.corrections_) == {"short", "long"} and len(levels) == 3
    assert levels["short"] > 0.9 > levels["long"] >= 0.85
    band = allocated.predict(upper, groups)
    assert np.mean(y <= band) >= 0.9
    assert np.mean(band) < np.mean(one_level.predict(upper, groups)) - 0.2
    # Thin groups share their own pooled level; an unseen group gets it too.
    assert band[groups == "thin1"][0] / 4.0 == allocated.correction(np.array(["never seen"]))[0]
    fresh = draw()
    assert np.mean(fresh <= band) == pytest.approx(0.9, abs=0.015)
    for g in ("short", "long"):
        assert np.mean(fresh[groups == g] <= band[groups == g]) >= 0.85 - 0.02


def test_a_floor_above_the_aggregate_is_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        GroupConformalUpper(0.9, floor=0.95)
