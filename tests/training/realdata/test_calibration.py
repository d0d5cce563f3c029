"""Held-out calibration: method choice, better calibration, conformal coverage."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import ConformalUpper, ProbabilityCalibrator
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
