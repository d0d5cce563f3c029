from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.baselines import LaneMedian, OnHandRule
from training.metrics import (
    classification_by_group,
    classification_metrics,
    coverage_by_group,
    expected_calibration_error,
    quantile_metrics,
    quantile_reliability,
    reliability_bins,
)


def test_ece_zero_for_perfect_calibration() -> None:
    p = np.repeat([0.1, 0.5, 0.9], 1000)
    y = np.concatenate(
        [
            np.r_[np.ones(100), np.zeros(900)],
            np.r_[np.ones(500), np.zeros(500)],
            np.r_[np.ones(900), np.zeros(100)],
        ]
    )
    assert expected_calibration_error(y, p) < 1e-9
    assert expected_calibration_error(y, p[::-1]) > 0.5


def test_classification_metrics_rank_a_perfect_score_first() -> None:
    y = np.array([0, 0, 1, 1])
    assert classification_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]))["auc"] == 1.0
    assert classification_metrics(y, np.array([0.9, 0.8, 0.2, 0.1]))["auc"] == 0.0


def test_quantile_metrics_coverage() -> None:
    y = np.arange(10.0)
    m = quantile_metrics(y, np.full(10, 4.5), np.full(10, 8.0))
    assert m["p90_coverage"] == 0.9
    assert m["mae_p50"] == 2.5


def test_lane_median_falls_back_to_global() -> None:
    train = pd.DataFrame({"node_id": ["a", "a", "b"], "dest_region": ["NY", "NY", "CA"]})
    lm = LaneMedian().fit(train, np.array([2.0, 4.0, 10.0]))
    test = pd.DataFrame({"node_id": ["a", "z"], "dest_region": ["NY", "TX"]})
    np.testing.assert_allclose(lm.predict(test), [3.0, 4.0])


def test_on_hand_rule_rises_as_stock_falls() -> None:
    f = pd.DataFrame({"on_hand": [10.0, 2.0, 0.0], "qty": [1.0, 1.0, 1.0]})
    p = OnHandRule().fit(f, np.zeros(3)).predict_proba(f)
    assert p[0] < p[1] < p[2] == 1.0


def test_reliability_bins_show_a_miscalibrated_band() -> None:
    p = np.repeat([0.15, 0.85], 100)
    y = np.r_[np.ones(50), np.zeros(50), np.ones(85), np.zeros(15)]
    rows = reliability_bins(y, p)
    assert [r["n"] for r in rows] == [100.0, 100.0]
    assert rows[0]["observed"] == 0.5
    assert rows[0]["predicted"] == pytest.approx(0.15)
    assert expected_calibration_error(y, p) == pytest.approx((100 * 0.35 + 100 * 0.0) / 200)


def test_classification_by_group_finds_the_node_whose_risk_is_understated() -> None:
    rng = np.random.default_rng(0)
    y_good = (rng.random(400) < 0.2).astype(int)
    p_good = np.where(y_good == 1, 0.35, 0.15)  # ranks perfectly, rate about right
    y_bad = np.r_[np.ones(30), np.zeros(70)].astype(int)
    p_bad = np.full(100, 0.05)  # says 5 % where 30 % ran out, and cannot rank
    y = np.r_[y_good, y_bad, [0, 1]]
    p = np.r_[p_good, p_bad, [0.5, 0.5]]
    groups = np.array(["good"] * 400 + ["bad"] * 100 + ["tiny"] * 2)
    rule = np.r_[np.full(400, 0.2), y_bad.astype(float), [0.0, 1.0]]
    rows = classification_by_group(y, p, groups, min_rows=10, baselines={"rule": rule})
    assert [r["group"] for r in rows] == ["bad", "good", "other"]
    bad, good = rows[0], rows[1]
    assert bad["n"] == 100 and bad["observed"] == 0.3 and bad["predicted"] == pytest.approx(0.05)
    assert bad["auc"] == 0.5 and bad["auc_rule"] == 1.0
    assert good["auc"] == 1.0 and good["auc_rule"] == 0.5
    assert bad["ece"] == pytest.approx(0.25)


def test_coverage_by_group_finds_the_late_lane_behind_a_good_average() -> None:
    y = np.r_[np.full(90, 2.0), np.full(10, 9.0), np.full(20, 9.0)]
    p50 = np.full(120, 3.0)
    p90 = np.full(120, 5.0)
    groups = np.array(["fast"] * 100 + ["slow"] * 15 + ["tiny"] * 5)
    rows = coverage_by_group(y, p50, p90, groups, min_rows=10)
    assert [r["group"] for r in rows] == ["slow", "fast", "other"]
    assert rows[0]["p90_coverage"] == 0.0 and rows[0]["n"] == 15
    assert rows[1]["p90_coverage"] == 0.9


def test_quantile_reliability_shows_short_trips_late_behind_a_good_average() -> None:
    """90 % covered overall, but the short trips (low P50) only 70 % and the long ones
    always: the decile table shows both ends."""
    p50 = np.repeat([2.0, 5.0, 8.0], 100)
    p90 = p50 * 1.5
    y = np.r_[np.full(70, 1.0), np.full(30, 9.0), np.full(100, 6.0), np.full(100, 7.0)]
    assert quantile_metrics(y, p50, p90)["p90_coverage"] == pytest.approx(0.9)
    rows = quantile_reliability(y, p50, p90, bins=3)
    assert [r["n"] for r in rows] == [100.0, 100.0, 100.0]
    assert [r["p90_coverage"] for r in rows] == pytest.approx([0.7, 1.0, 1.0])
    assert [r["p50_coverage"] for r in rows] == pytest.approx([0.7, 0.0, 1.0])
    assert rows[0]["mean_p50"] == 2.0 and rows[2]["mean_p90"] == 12.0
    assert quantile_reliability(np.array([]), np.array([]), np.array([])) == []
