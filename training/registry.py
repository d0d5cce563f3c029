"""MLflow tracking and registry: log a trained model with its review material, register it,
and move aliases. Reviewers read everything they need from the version page."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from training.config import CHALLENGER, CHAMPION

EXPERIMENT = "routecast"

#: Declared so MLflow does not probe the environment on every log (slow and noisy).
PIP_REQUIREMENTS = ["lightgbm", "pandas<3", "numpy", "scikit-learn", "routecast"]


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]


def configure(tracking_uri: str, artifact_dir: Path) -> MlflowClient:
    """Point MLflow at the SQLite store and keep artifacts under the demo home, not the CWD."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:
        artifact_dir.mkdir(parents=True, exist_ok=True)
        client.create_experiment(EXPERIMENT, artifact_location=artifact_dir.resolve().as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return client


def code_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def metrics_table(metrics: Mapping[str, Mapping[str, float]]) -> str:
    """Markdown table: one row per metric, one column per candidate (model, baselines, champion)."""
    columns = list(metrics)
    keys: list[str] = []
    for values in metrics.values():
        keys.extend(k for k in values if k not in keys)
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key in keys:
        cells = [f"{metrics[c].get(key, float('nan')):.4f}" for c in columns]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def current_alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def champion_metrics(
    client: MlflowClient, name: str, alias: str = CHAMPION
) -> tuple[str, dict[str, float]] | None:
    """The current champion's logged test metrics (its own test window), if any."""
    version = current_alias_version(client, name, alias)
    if version is None:
        return None
    mv = client.get_model_version(name, version)
    if not mv.run_id:
        return None
    run = client.get_run(mv.run_id)
    own = {k: float(v) for k, v in run.data.metrics.items() if "." not in k}
    return version, own


def breakdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of per-group or per-bin rows (coverage by lane, reliability bins)."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def review_report(
    name: str,
    metrics: Mapping[str, Mapping[str, float]],
    tags: Mapping[str, str],
    figures: Mapping[str, Any],
    sections: Mapping[str, str] | None = None,
) -> str:
    """One page a reviewer reads in the registry before moving the champion alias."""
    plots = "\n".join(f"- `plots/{f}`" for f in figures) or "- (none)"
    extra = "".join(f"\n## {title}\n\n{body}\n" for title, body in (sections or {}).items())
    return f"""# Review: {name}

**Data window:** {tags.get("data_window_start", "?")} → {tags.get("data_window_end", "?")}
**Feature service:** `{tags.get("feature_service", "?")}` · **code revision:** `{tags.get("code_revision", "?")}`
**Features:** {tags.get("features", "?").replace(",", ", ")}

## Held-out test window (time split: nothing later leaks backwards)

{metrics_table(metrics)}

The model column must beat every baseline column; a champion column, when present, shows
the current champion's metrics on *its own* test window. The promotion gate
(`routecast promote`) re-scores challenger and champion on the same newest holdout and
records its verdict in the `gate_verdict` / `gate_report` tags of this version.
{extra}
## Plots
{plots}
"""


def log_and_register(
    client: MlflowClient,
    *,
    name: str,
    champion_alias: str = CHAMPION,
    challenger_alias: str = CHALLENGER,
    python_model: PythonModel,
    input_example: pd.DataFrame,
    output_example: pd.DataFrame,
    metrics: Mapping[str, Mapping[str, float]],
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    figures: Mapping[str, Any],
    extra_text: Mapping[str, str] | None = None,
    sections: Mapping[str, str] | None = None,
) -> RegisteredVersion:
    """Log one run, register it under ``name`` and alias it.

    The first version takes the alias the server loads (``champion_alias``); later ones
    become ``challenger_alias`` and wait for the promotion gate. ``sections`` (title →
    markdown, e.g. coverage by lane group, a reliability table) go into the review report
    and the version's description, so a reviewer sees where a challenger is better or
    worse, not only the averages.
    """
    champ = champion_metrics(client, name, champion_alias)
    table = dict(metrics)
    if champ is not None:
        table[f"champion_v{champ[0]}"] = champ[1]
    with mlflow.start_run(run_name=name) as run:
        mlflow.log_params({k: v for k, v in params.items()})
        for candidate, values in metrics.items():
            prefix = "" if candidate == "model" else f"{candidate}."
            mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in values.items()})
        for fname, fig in figures.items():
            mlflow.log_figure(fig, f"plots/{fname}")
        mlflow.log_text(review_report(name, table, tags, figures, sections), "review.md")
        for fname, text in (extra_text or {}).items():
            mlflow.log_text(text, fname)
        mlflow.set_tags(dict(tags))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            signature=infer_signature(input_example, output_example),
            input_example=input_example,
            pip_requirements=PIP_REQUIREMENTS,
        )
        run_id = run.info.run_id
    version = mlflow.register_model(info.model_uri, name, tags=dict(tags))
    extra = "".join(f"## {title}\n\n{body}\n\n" for title, body in (sections or {}).items())
    plot_list = ", ".join(f"`plots/{f}`" for f in figures)
    client.update_model_version(
        name,
        version.version,
        description=(
            f"## Metrics on the held-out test window\n\n{metrics_table(table)}\n\n{extra}"
            f"Review report: artifact `review.md`; plots: {plot_list}."
        ),
    )
    first = current_alias_version(client, name, champion_alias) is None
    alias = champion_alias if first else challenger_alias
    client.set_registered_model_alias(name, alias, version.version)
    return RegisteredVersion(
        name=name, version=str(version.version), run_id=run_id, aliases=(alias,)
    )
