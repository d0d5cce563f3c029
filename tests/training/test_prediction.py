"""The shared prediction rules: band groups named as the per-row rule names them (one
string per distinct row), factors looked up per group, calibration as documented."""

from __future__ import annotations

import numpy as np

from training import prediction


def test_group_keys_and_factors_match_the_per_row_rule() -> None:
    rng = np.random.default_rng(0)
    cols = rng.integers(-1, 7, (500, 2)).astype(float)
    cols[::17, 0] = -0.0  # prints "-0", not "0"
    cols[::23, 1] = np.nan
    cols[::29, 1] = 1234567.0  # :g keeps six digits
    keys = prediction.group_keys(cols)
    assert keys.tolist() == [">".join(f"{v:g}" for v in row) for row in cols]
    corrections = {"0>1": 1.5, "3>-1": 0.9, "-0>2": 2.0}
    got = prediction.factors(keys, corrections, 1.1)
    np.testing.assert_array_equal(got, [corrections.get(k, 1.1) for k in keys])
    assert prediction.group_keys(np.zeros((3, 0))).tolist() == ["", "", ""]
    assert len(prediction.factors(np.zeros(0, dtype=object), corrections, 1.0)) == 0


def test_the_p90_is_the_widened_base_and_never_below_the_p50() -> None:
    p50 = np.array([1.0, 2.0, 3.0])
    raw90 = np.log1p(np.array([4.0, 1.0, 3.5]))
    got = prediction.delivery_upper(p50, raw90, 0.0, np.array([1.1, 0.5, 1.0]), False)
    np.testing.assert_allclose(got, [4.4, 2.0, 3.5])
    np.testing.assert_array_equal(
        prediction.delivery_upper(p50, None, 0.0, np.array([1.0, -5.0, 0.5]), True), [2.0, 2.0, 3.5]
    )
    assert prediction.quantile(np.array([-3.0]), 1.0).tolist() == [0.0]


def test_calibration_is_clipped_to_probabilities() -> None:
    s = np.array([0.0, 0.2, 0.9, 1.0])
    iso = prediction.calibrated(s, "isotonic", x=np.array([0.1, 0.8]), y=np.array([0.05, 0.7]))
    np.testing.assert_allclose(iso, [0.05, 0.05 + 0.65 / 7, 0.7, 0.7])
    platt = prediction.calibrated(s, "sigmoid", a=1.0, b=0.0)
    np.testing.assert_allclose(platt[1:3], s[1:3])  # identity on the logit, away from the clip
    assert ((platt >= 0) & (platt <= 1)).all()


def test_group_factors_are_the_factors_of_the_group_keys() -> None:
    rng = np.random.default_rng(1)
    corrections = {"0>1": 1.5, "3>-1": 0.9, "-0>2": 2.0, "nan>4": 0.7, "": 1.3, "2": 0.8}
    for width in (0, 1, 2, 3):
        for rows in (0, 1, 2, 40, 700):
            cols = rng.integers(-1, 5, (rows, width)).astype(float)
            if rows and width:
                cols[::7, 0] = -0.0
                cols[::11, -1] = np.nan
                cols[::13, 0] = np.float64(np.nan) * -1  # another NaN bit pattern
            want = prediction.factors(prediction.group_keys(cols), corrections, 1.1)
            got = prediction.group_factors(cols, corrections, 1.1)
            assert got.dtype == np.float64 and len(got) == rows
            np.testing.assert_array_equal(got, want)
    # rows apart only by the sign of zero are told apart, as their names are
    cols = np.array([[0.0, 2.0], [-0.0, 2.0]])
    assert prediction.group_keys(cols).tolist() == ["0>2", "-0>2"]
    np.testing.assert_array_equal(prediction.group_factors(cols, corrections, 1.1), [1.1, 2.0])
