"""The promotion gate: challenger and champion scored on the same recent holdout, declared
thresholds, and the ``champion`` alias moved only when the challenger wins."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from feast import FeatureStore
from mlflow import MlflowClient

from training.config import GateThresholds, TrainingConfig
from training.metrics import classification_metrics, quantile_metrics
from training.pipeline import training_split
from training.registry import current_alias_version


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class GateResult:
    name: str
    champion_version: str | None
    challenger_version: str
    champion_metrics: dict[str, float]
    challenger_metrics: dict[str, float]
    checks: list[Check] = field(default_factory=list)
    promoted: bool = False

    @property
    def verdict(self) -> str:
        return "pass" if all(c.passed for c in self.checks) else "fail"

    def explain(self) -> str:
        head = (
            f"{self.name}: challenger v{self.challenger_version} vs champion "
            f"v{self.champion_version} -> {'PROMOTED' if self.promoted else 'KEPT champion'}"
        )
        lines = [head] + [
            f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks
        ]
        return "\n".join(lines)


def _load(name: str, alias: str) -> object:
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}").unwrap_python_model().model


def _score(kind: str, model: object, frame: pd.DataFrame) -> dict[str, float]:
    if kind == "stockout":
        p = model.predict_proba(frame)  # type: ignore[attr-defined]
        return classification_metrics(frame["label"].to_numpy(int), p)
    p50, p90 = model.predict_quantiles(frame)  # type: ignore[attr-defined]
    return quantile_metrics(frame["label"].to_numpy(float), p50, p90)


def gate_checks(
    kind: str, champ: dict[str, float], chall: dict[str, float], t: GateThresholds
) -> list[Check]:
    if kind == "stockout":
        return [
            Check(
                "auc",
                chall["auc"] >= champ["auc"] + t.min_auc_gain,
                f"{chall['auc']:.4f} vs {champ['auc']:.4f} (needs gain >= {t.min_auc_gain})",
            ),
            Check(
                "brier",
                chall["brier"] <= champ["brier"] + t.max_brier_increase,
                f"{chall['brier']:.4f} vs {champ['brier']:.4f} (may rise <= {t.max_brier_increase})",
            ),
            Check("ece", chall["ece"] <= t.max_ece, f"{chall['ece']:.4f} (bound {t.max_ece})"),
        ]
    return [
        Check(
            "mae_p50",
            chall["mae_p50"] <= champ["mae_p50"] * t.max_mae_ratio,
            f"{chall['mae_p50']:.3f} vs {champ['mae_p50']:.3f} (ratio bound {t.max_mae_ratio})",
        ),
        Check(
            "p90_coverage",
            chall["p90_coverage"] >= t.min_p90_coverage,
            f"{chall['p90_coverage']:.3f} (needs >= {t.min_p90_coverage})",
        ),
        Check(
            "mean_p90_days",
            chall["mean_p90_days"] <= champ["mean_p90_days"] * t.max_mean_p90_ratio,
            f"{chall['mean_p90_days']:.2f} vs {champ['mean_p90_days']:.2f} (ratio bound {t.max_mean_p90_ratio})",
        ),
    ]


def promote(
    client: MlflowClient,
    store: FeatureStore,
    raw_dir: Path,
    *,
    kind: str,
    config: TrainingConfig | None = None,
) -> GateResult:
    """Score champion and challenger on the newest holdout; move the alias the server loads
    (``config.champion_alias``) to the challenger if the gate passes."""
    config = config or TrainingConfig()
    name, champion, challenger = (
        config.model_name(kind),
        config.champion_alias,
        config.challenger_alias,
    )
    chall_v = current_alias_version(client, name, challenger)
    if chall_v is None:
        raise LookupError(f"{name} has no '{challenger}' version: run `routecast train` first")
    champ_v = current_alias_version(client, name, champion)
    holdout = training_split(kind, store, raw_dir, max_rows=config.max_rows).test
    chall_m = _score(kind, _load(name, challenger), holdout)
    champ_m = (
        _score(kind, _load(name, champion), holdout) if champ_v else {k: np.nan for k in chall_m}
    )
    checks = (
        gate_checks(kind, champ_m, chall_m, config.thresholds)
        if champ_v
        else [Check("no champion", True, "first release")]
    )
    result = GateResult(name, champ_v, chall_v, champ_m, chall_m, checks)
    client.set_model_version_tag(name, chall_v, "gate_verdict", result.verdict)
    client.set_model_version_tag(name, chall_v, "gate_report", result.explain()[:4900])
    if result.verdict == "pass":
        client.set_registered_model_alias(name, champion, chall_v)
        client.delete_registered_model_alias(name, challenger)
        if champ_v:
            client.set_model_version_tag(name, champ_v, "replaced_by", chall_v)
        result.promoted = True
    return result
