"""Top-level model commands: train and register, gate and promote."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from serving.cli.common import console, settings


def train(
    dask: Annotated[
        str | None,
        typer.Option(help="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786"),
    ] = None,
) -> None:
    """Train both models; the first versions become champion, later ones challenger."""
    from features.store import open_feature_store
    from training.config import TrainingConfig
    from training.pipeline import summary_rows, train_all
    from training.registry import configure

    s = settings()
    client = configure(s.tracking_uri, s.artifact_dir)
    store = open_feature_store(s)
    config = TrainingConfig.from_settings(s)

    def step(n: str) -> None:
        console.print(f"training {n}…")

    if dask:
        from training.distributed import DaskClusterError, train_all_dask

        try:
            results = train_all_dask(
                store, s.raw_dir, client, scheduler=dask, config=config, on_step=step
            )
        except DaskClusterError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    else:
        results = train_all(store, s.raw_dir, client, config=config, on_step=step)
    table = Table(title="test-window metrics")
    for col in ("model", "candidate", "metric", "value"):
        table.add_column(col)
    for name, cand, key, val in summary_rows(results):
        table.add_row(name, cand, key, f"{val:.4f}")
    console.print(table)
    for r in results:
        if r.version:
            console.print(
                f"registered {r.name} v{r.version.version} as {', '.join(r.version.aliases)}"
            )


def promote(
    model: Annotated[str, typer.Option(help="stockout, delivery or all")] = "all",
) -> None:
    """Gate each challenger against the champion on the newest holdout; promote winners."""
    from features.store import open_feature_store
    from training.config import TrainingConfig
    from training.promotion import promote as run_gate
    from training.registry import configure

    s = settings()
    client = configure(s.tracking_uri, s.artifact_dir)
    store = open_feature_store(s)
    config = TrainingConfig.from_settings(s)
    failed = False
    for kind in ("stockout", "delivery"):
        if model not in ("all", kind):
            continue
        try:
            result = run_gate(client, store, s.raw_dir, kind=kind, config=config)
        except LookupError as exc:
            console.print(f"[yellow]{exc}[/yellow]")
            continue
        console.print(result.explain())
        failed |= not result.promoted
    raise typer.Exit(1 if failed else 0)
