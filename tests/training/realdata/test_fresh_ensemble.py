"""The FreshRetailNet ensemble: each member never trains on the series it scores for the
calibrator, and the averaged probabilities are calibrated on unseen series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.realdata import fresh_views
from training.metrics import expected_calibration_error
from training.realdata.fresh_eval import FEATURES, FreshSettings, FreshStockoutModel, series_folds


def _frame(series: int = 40, days: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = series * days
    frame = pd.DataFrame({f: rng.normal(size=n) for f in FEATURES})
    frame["node_id"] = [f"s{i % 5}" for i in range(series)] * days
    frame["sku"] = [f"p{i}" for i in range(series)] * days
    frame["so_share"] = rng.uniform(0, 1, n)
    logit = -1.5 + 2.5 * frame["so_share"] + 0.8 * frame["so_share_7d"]
    frame["label"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


SMALL = FreshSettings(num_boost_round=60, params={"learning_rate": 0.1, "num_threads": 1})


def test_a_series_never_trains_the_member_that_scores_it() -> None:
    frame = _frame()
    fold = series_folds(frame, SMALL.folds, SMALL.seed)
    model = FreshStockoutModel(SMALL).fit(frame)
    # Flip every label of fold 0's series: member 0 never saw them, so it is unchanged,
    # while the members that trained on them change.
    flipped = frame.assign(label=np.where(fold == 0, 1 - frame["label"], frame["label"]))
    again = FreshStockoutModel(SMALL).fit(flipped)
    assert again.members_[0].model_str_ == model.members_[0].model_str_
    assert again.members_[1].model_str_ != model.members_[1].model_str_


def test_probabilities_are_calibrated_on_new_series() -> None:
    model = FreshStockoutModel(SMALL).fit(_frame(seed=1))
    test = _frame(seed=2)
    p = model.predict_proba(test)
    assert ((p >= 0) & (p <= 1)).all()
    assert expected_calibration_error(test["label"].to_numpy(), p) < 0.05


def test_too_few_series_for_the_folds_is_named() -> None:
    with pytest.raises(ValueError, match="folds"):
        FreshStockoutModel(SMALL).fit(_frame(series=3))


def test_every_monotone_direction_names_a_model_feature() -> None:
    # A misspelt name would silently constrain nothing.
    assert set(fresh_views.MONOTONE) <= set(FEATURES)
    assert set(fresh_views.MONOTONE.values()) <= {-1, 1}


def test_members_follow_the_known_directions() -> None:
    frame = _frame(seed=3)
    model = FreshStockoutModel(SMALL).fit(frame)
    rows = frame.sample(50, random_state=0).reset_index(drop=True)
    grid = np.linspace(-3.0, 3.0, 13)
    for name, direction in fresh_views.MONOTONE.items():
        for member in model.members_:
            swept = np.stack(
                [member.predict_proba(rows.assign(**{name: value})) for value in grid], axis=1
            )
            steps = direction * np.diff(swept, axis=1)
            assert (steps >= -1e-12).all(), name
