"""Kaplan–Meier quantiles: exact without censoring, unbiased where the naive one is fast."""

from __future__ import annotations

import numpy as np
import pytest

from features.realdata.survival import kaplan_meier_quantile


def test_without_censoring_it_is_the_empirical_quantile() -> None:
    durations = np.arange(1.0, 11.0)
    assert kaplan_meier_quantile(durations, np.ones(10, bool), 0.5) == 5.0
    assert kaplan_meier_quantile(durations, np.ones(10, bool), 0.9) == 9.0


def test_parcels_still_travelling_push_the_median_up_not_down() -> None:
    rng = np.random.default_rng(0)
    bought = rng.uniform(0, 28, 4000)  # purchases over four weeks, observed at day 28
    true = rng.gamma(4.0, 2.5, 4000)  # median about 9.2 days
    known = bought + true <= 28
    seen = np.where(known, true, 28 - bought)
    naive = float(np.median(true[known]))
    km = kaplan_meier_quantile(seen, known, 0.5)
    assert naive < np.median(true) - 1.0  # arrived-only is biased fast
    assert km == pytest.approx(np.median(true), abs=0.5)


def test_unreachable_quantile_is_nan_and_bad_q_is_refused() -> None:
    assert np.isnan(kaplan_meier_quantile(np.array([1.0, 2.0]), np.array([True, False]), 0.9))
    assert np.isnan(kaplan_meier_quantile(np.array([]), np.array([], bool), 0.5))
    with pytest.raises(ValueError, match="q must lie"):
        kaplan_meier_quantile(np.array([1.0]), np.array([True]), 1.0)
