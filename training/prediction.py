"""What a champion predicts from its boosters' raw scores: the one home of these rules.

The estimators (``training.models``, ``training.calibration``) and the service's compact
form of a champion (``serving.compact_model``, which must not import the training stack)
both call these functions, so a prediction rule is written once and both predict the same
numbers by construction. numpy only: no pandas, scikit-learn or lightgbm import, so the
service can import it at start without paying for them.

* stockout: the booster's probability, then its calibration (isotonic steps or Platt's
  sigmoid on the logit), clipped to [0, 1];
* delivery: P50 = P50 booster + its init, clipped at 0; the band's base is the P50, or with
  a P90 booster (CQR) expm1(P90 booster + its init) clipped at 0 and at least the P50;
  P90 = base widened by the factor of the row's band group (pooled where the group has
  none), at least the P50.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: logit clip of the calibration
EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.asarray(np.log(np.clip(p, EPS, 1 - EPS) / np.clip(1 - p, EPS, 1)))


def calibrated(
    scores: np.ndarray,
    method: str,
    *,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    a: float = 1.0,
    b: float = 0.0,
) -> np.ndarray:
    """Probabilities from raw scores: ``isotonic`` interpolates the thresholds (x, y),
    ``sigmoid`` is Platt's a·logit + b."""
    scores = np.asarray(scores, dtype=float)
    if method == "isotonic":
        assert x is not None and y is not None
        out = np.interp(scores, x, y)
    else:
        out = 1.0 / (1.0 + np.exp(-(a * logit(scores) + b)))
    return np.clip(np.asarray(out, dtype=np.float64), 0.0, 1.0)


def quantile(raw: np.ndarray, init: float, log: bool = False) -> np.ndarray:
    """A quantile booster's prediction in days: raw score + its init (expm1 of it for a
    booster fitted on log(1 + days)), clipped at 0."""
    shifted = np.asarray(raw, dtype=np.float64) + init
    return np.asarray(np.clip(np.expm1(shifted) if log else shifted, 0.0, None), dtype=np.float64)


def _distinct_rows(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(one row index per distinct row, each row's distinct row) of a float64 matrix with
    columns, rows told apart by bit pattern, so 0.0 and -0.0 (which print differently) stay
    apart: a lexicographic sort of the bits, not ``np.unique(axis=0)``'s row objects."""
    bits = columns.view(np.uint64)
    order = np.lexsort(bits.T[::-1])
    ranked = bits[order]
    new = np.ones(len(order), dtype=bool)
    np.any(ranked[1:] != ranked[:-1], axis=1, out=new[1:])
    back = np.empty(len(order), dtype=np.intp)
    back[order] = np.cumsum(new) - 1
    return order[new], back


def _group_names(columns: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The band group name of each distinct row (its values joined, ``"3>1"``; ``""``
    without columns) and each row's distinct row: a string per distinct row, not per row."""
    columns = np.ascontiguousarray(columns, dtype=np.float64)
    if columns.ndim != 2 or columns.shape[1] == 0:
        return [""], np.zeros(len(columns), dtype=np.intp)
    first, back = _distinct_rows(columns)
    return [">".join(f"{v:g}" for v in row) for row in columns[first].tolist()], back


def group_keys(columns: np.ndarray) -> np.ndarray:
    """The band group of each row: its group columns' values joined (``"3>1"``), one
    group ``""`` without columns."""
    names, back = _group_names(columns)
    return np.asarray(np.array(names, dtype=object)[back], dtype=object)


def factors(groups: np.ndarray, corrections: Mapping[str, float], pooled: float) -> np.ndarray:
    """Each row's band factor: its group's correction, the pooled one where it has none
    (looked up once per distinct group)."""
    groups = np.asarray(groups, dtype=object)
    if not len(groups):
        return np.zeros(0)
    names, back = np.unique(groups.astype(str), return_inverse=True)
    found = np.array([corrections.get(str(g), pooled) for g in names], dtype=float)
    return np.asarray(found[back.reshape(-1)], dtype=np.float64)


def group_factors(
    columns: np.ndarray, corrections: Mapping[str, float], pooled: float
) -> np.ndarray:
    """``factors(group_keys(columns), ...)`` with the distinct rows found once and no string
    per row: what a prediction needs of the band groups."""
    if not len(columns):
        return np.zeros(0)
    names, back = _group_names(columns)
    found = np.array([corrections.get(name, pooled) for name in names], dtype=float)
    return np.asarray(found[back], dtype=np.float64)


def widen(upper: np.ndarray, factor: np.ndarray | float, additive: bool) -> np.ndarray:
    upper = np.asarray(upper, dtype=float)
    return np.asarray(upper + factor if additive else upper * factor)


def delivery_upper(
    p50: np.ndarray,
    raw90: np.ndarray | None,
    init90: float,
    factor: np.ndarray,
    additive: bool,
    scale: np.ndarray | float = 1.0,
) -> np.ndarray:
    """The P90 for these P50s: the base (the P50, or the P90 booster's prediction × scale,
    at least the P50) widened by the band factor, at least the P50."""
    p50 = np.asarray(p50, dtype=np.float64)
    base = p50
    if raw90 is not None:
        base = np.maximum(quantile(raw90, init90, log=True) * scale, p50)
    return np.asarray(np.maximum(widen(base, factor, additive), p50), np.float64)
