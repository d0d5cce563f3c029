"""``routecast features``: build tables, feast apply, materialize, refresh from operations."""

from __future__ import annotations

from typing import Annotated

import typer

from serving.cli.common import console, settings

app = typer.Typer(help="Feature store: build tables, feast apply, materialize.")


@app.command("build")
def features_build() -> None:
    """Compute feature tables from the canonical raw tables."""
    from features.compute import build_feature_tables

    s = settings()
    paths = build_feature_tables(s.raw_dir, s.feature_dir, progress=True)
    console.print(f"built {len(paths)} feature tables in {s.feature_dir}")


@app.command("apply")
def features_apply() -> None:
    """`feast apply` the repository definitions to the registry."""
    from features.store import apply_definitions, open_feature_store

    s = settings()
    names = apply_definitions(open_feature_store(s), s.feature_dir)
    console.print(f"applied: {', '.join(names)}")


@app.command("materialize")
def features_materialize() -> None:
    """Load the latest feature values into the online store (incremental, UTC)."""
    from features.store import materialize, open_feature_store

    materialize(open_feature_store(settings()), None, progress=True)
    console.print("materialized")


@app.command("refresh")
def features_refresh(
    as_of: Annotated[
        str | None, typer.Option(help="Materialise up to this time (default: now).")
    ] = None,
) -> None:
    """Merge the exported ledger days into the history, recompute the tables, materialise."""
    from serving.cli.retrain import parse_as_of, print_steps
    from serving.retrain import refresh_features

    report = refresh_features(settings(), now=parse_as_of(as_of))
    print_steps(report.steps)
    console.print(f"merged history: {report.merged}")
