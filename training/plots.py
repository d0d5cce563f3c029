"""Review plots attached to every model version (reliability, residuals, importance)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from training.metrics import quantile_reliability, reliability_bins


def reliability(y: np.ndarray, probs: Mapping[str, np.ndarray], bins: int = 10) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for label, p in probs.items():
        rows = [r for r in reliability_bins(y, p, bins) if r["n"] >= 5]
        ax.plot(
            [r["predicted"] for r in rows], [r["observed"] for r in rows], marker="o", label=label
        )
    ax.set(xlabel="predicted stockout risk", ylabel="observed rejection rate", title="Reliability")
    ax.legend()
    fig.tight_layout()
    plt.close(fig)
    return fig


def coverage_by_group(rows: Sequence[Mapping[str, Any]], title: str = "lane") -> Figure:
    """Quantile reliability per group: observed share below the P50 and P90 against nominal."""
    names = [f"{r['group']} (n={r['n']})" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.5))
    pos = np.arange(len(rows))
    ax.barh(pos - 0.2, [r["p90_coverage"] for r in rows], 0.4, label="P90", color="tab:blue")
    ax.barh(pos + 0.2, [r["p50_coverage"] for r in rows], 0.4, label="P50", color="tab:orange")
    ax.axvline(0.9, color="tab:blue", ls="--", lw=1)
    ax.axvline(0.5, color="tab:orange", ls="--", lw=1)
    ax.set_yticks(pos, names)
    ax.set(xlim=(0, 1), xlabel="share delivered within the quantile", title=f"Coverage by {title}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def calibration_by_group(rows: Sequence[Mapping[str, Any]], title: str = "node") -> Figure:
    """Observed against predicted stockout rate per group: a node whose risk is under-stated
    shows its observed bar beyond the predicted one."""
    names = [f"{r['group']} (n={r['n']}, AUC {r['auc']:.2f})" for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.5))
    pos = np.arange(len(rows))
    ax.barh(pos - 0.2, [r["observed"] for r in rows], 0.4, label="observed", color="tab:red")
    ax.barh(pos + 0.2, [r["predicted"] for r in rows], 0.4, label="predicted", color="tab:blue")
    ax.set_yticks(pos, names)
    ax.set(xlabel="stockout rate", title=f"Observed and predicted risk by {title}")
    ax.legend(loc="lower right")
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


def quantile_reliability_diagram(
    y: np.ndarray, quantiles: Mapping[str, tuple[np.ndarray, np.ndarray]], bins: int = 10
) -> Figure:
    """Delivery reliability: share delivered within the P50 and the P90 per decile of the
    predicted P50, one line pair per candidate, against the nominal 0.5 and 0.9."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.axhline(0.9, color="k", ls="--", lw=1)
    ax.axhline(0.5, color="k", ls=":", lw=1)
    for i, (label, (p50, p90)) in enumerate(quantiles.items()):
        rows = quantile_reliability(y, p50, p90, bins)
        x = [r["mean_p50"] for r in rows]
        colour = f"C{i}"
        ax.plot(
            x, [r["p90_coverage"] for r in rows], marker="o", color=colour, label=f"{label} P90"
        )
        ax.plot(x, [r["p50_coverage"] for r in rows], marker="s", ls=":", color=colour)
    ax.set(
        ylim=(0, 1),
        xlabel="predicted P50 (days, decile mean)",
        ylabel="share delivered within (o P90, s P50)",
        title="Quantile reliability",
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    plt.close(fig)
    return fig
