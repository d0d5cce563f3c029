from __future__ import annotations

import numpy as np
import pandas as pd

from training.baselines import LaneMedian, OnHandRule
from training.metrics import classification_metrics, expected_calibration_error, quantile_metrics


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
