"""Metrics for both models, one dict per evaluation so runs and baselines compare key by key."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Weighted mean |observed rate − mean prediction| over equal-width probability bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = idx == b
        if mask.any():
            total += mask.sum() * abs(y[mask].mean() - p[mask].mean())
    return float(total / max(len(y), 1))


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
