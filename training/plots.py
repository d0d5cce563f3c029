"""Review plots attached to every model version (reliability, residuals, importance)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def reliability(y: np.ndarray, probs: Mapping[str, np.ndarray], bins: int = 10) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    edges = np.linspace(0, 1, bins + 1)
    for label, p in probs.items():
        idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
        xs, ys = [], []
        for b in range(bins):
            mask = idx == b
            if mask.sum() >= 5:
                xs.append(float(p[mask].mean()))
                ys.append(float(np.asarray(y)[mask].mean()))
        ax.plot(xs, ys, marker="o", label=label)
    ax.set(xlabel="predicted stockout risk", ylabel="observed rejection rate", title="Reliability")
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def residuals(y: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].hist(np.asarray(y) - p50, bins=50, color="tab:blue")
    axes[0].set(title="actual − P50 (days)", xlabel="days")
    order = np.argsort(p50)
    axes[1].plot(p50[order], p90[order], lw=1, label="P90")
    axes[1].scatter(p50, y, s=2, alpha=0.3, color="tab:gray", label="actual")
    axes[1].set(xlabel="predicted P50 (days)", ylabel="days", title="Promise band")
    axes[1].legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def importance(gains: Mapping[str, float]) -> Figure:
    names = sorted(gains, key=lambda n: gains[n])
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1))
    ax.barh(names, [gains[n] for n in names], color="tab:green")
    ax.set(title="Feature importance (gain)")
    fig.tight_layout()
    plt.close(fig)
    return fig
