"""Metrics for both models, one dict per evaluation so runs and baselines compare key by key."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins: rows, mean prediction, observed rate (empty bins left out).

    The table behind a reliability diagram and the expected calibration error.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        if mask.any():
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "n": float(mask.sum()),
                    "predicted": float(p[mask].mean()),
                    "observed": float(y[mask].mean()),
                }
            )
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate − mean prediction| over equal-width probability bins."""
    rows = reliability_bins(y, p, bins)
    total = sum(r["n"] * abs(r["observed"] - r["predicted"]) for r in rows)
    return float(total / max(len(np.asarray(y)), 1))


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    both = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "n": float(len(y)),
    }


def pinball_loss(y: np.ndarray, q: np.ndarray, alpha: float) -> float:
    diff = np.asarray(y, float) - np.asarray(q, float)
    return float(np.mean(np.maximum(alpha * diff, (alpha - 1) * diff)))


def quantile_metrics(y: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, float)
    return {
        "mae_p50": float(np.mean(np.abs(y - p50))),
        "pinball_p50": pinball_loss(y, p50, 0.5),
        "pinball_p90": pinball_loss(y, p90, 0.9),
        "p90_coverage": float(np.mean(y <= p90)),
        "mean_p90_days": float(np.mean(p90)),
        "n": float(len(y)),
    }


def pooled_groups(groups: np.ndarray, min_rows: int) -> np.ndarray:
    """Each row's group name, ``other`` for groups with fewer than ``min_rows`` rows."""
    groups = np.asarray(groups, dtype=object)
    names, counts = np.unique(groups, return_counts=True)
    small = set(names[counts < min_rows].tolist())
    return np.array(["other" if g in small else str(g) for g in groups], dtype=object)


def coverage_by_group(
    y: np.ndarray,
    p50: np.ndarray,
    p90: np.ndarray,
    groups: np.ndarray,
    min_rows: int = 1,
) -> list[dict[str, Any]]:
    """Per group (e.g. lane): rows, share at or below the P50 and the P90, mean P90.

    Groups with fewer than ``min_rows`` rows are pooled into one ``other`` row, so a
    short average promise cannot hide a lane that is always late. Worst P90 first.
    """
    y, p50, p90 = (np.asarray(a, dtype=float) for a in (y, p50, p90))
    label = pooled_groups(groups, min_rows)
    rows = []
    for name in np.unique(label):
        mask = label == name
        rows.append(
            {
                "group": str(name),
                "n": int(mask.sum()),
                "p50_coverage": float(np.mean(y[mask] <= p50[mask])),
                "p90_coverage": float(np.mean(y[mask] <= p90[mask])),
                "mean_p90_days": float(np.mean(p90[mask])),
            }
        )
    return sorted(rows, key=lambda r: (r["group"] == "other", r["p90_coverage"]))


def quantile_reliability(
    y: np.ndarray, p50: np.ndarray, p90: np.ndarray, bins: int = 10
) -> list[dict[str, float]]:
    """Reliability of a quantile pair: per equal-count bin of the predicted P50, the share
    delivered within the P50 and the P90 (nominal 0.5 and 0.9) and the mean predictions.

    A band can cover 0.90 on average while short trips are always late and long ones
    never; this is the table behind the delivery model's reliability diagram.
    """
    y, p50, p90 = (np.asarray(a, dtype=float) for a in (y, p50, p90))
    if len(y) == 0:
        return []
    order = np.argsort(p50, kind="stable")
    rows = []
    for idx in np.array_split(order, min(bins, len(y))):
        rows.append(
            {
                "p50_low": float(p50[idx].min()),
                "p50_high": float(p50[idx].max()),
                "n": float(len(idx)),
                "mean_p50": float(p50[idx].mean()),
                "mean_p90": float(p90[idx].mean()),
                "p50_coverage": float(np.mean(y[idx] <= p50[idx])),
                "p90_coverage": float(np.mean(y[idx] <= p90[idx])),
            }
        )
    return rows


def classification_by_group(
    y: np.ndarray,
    p: np.ndarray,
    groups: np.ndarray,
    min_rows: int = 1,
    baselines: dict[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Per group (e.g. node): rows, observed and predicted rate, AUC, Brier, ECE.

    The averages of a stockout model can hide a node it ranks no better than a baseline
    or whose risk it under-states; ``baselines`` add each baseline's AUC per group
    (``auc_<name>``). Groups under ``min_rows`` are pooled as ``other``; largest
    calibration gap first. AUC is NaN in a group with one class only.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    label = pooled_groups(groups, min_rows)
    rows = []
    for name in np.unique(label):
        mask = label == name
        m = classification_metrics(y[mask], p[mask])
        row: dict[str, Any] = {
            "group": str(name),
            "n": int(mask.sum()),
            "observed": m["positive_rate"],
            "predicted": float(p[mask].mean()),
            "auc": m["auc"],
            "brier": m["brier"],
            "ece": m["ece"],
        }
        for base, q in (baselines or {}).items():
            row[f"auc_{base}"] = classification_metrics(y[mask], np.asarray(q)[mask])["auc"]
        rows.append(row)
    return sorted(rows, key=lambda r: (r["group"] == "other", -abs(r["observed"] - r["predicted"])))
