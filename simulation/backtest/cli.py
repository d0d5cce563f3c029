"""``routecast backtest``: the Typer command (registered in the ``routecast`` app)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from simulation.backtest.harness import POLICIES, BacktestSpec, run_backtest, write_json
from simulation.backtest.kpis import KPI_NAMES


def backtest(
    scale: Annotated[str, typer.Option(help="World size: small, medium or large.")] = "small",
    seed: Annotated[int, typer.Option(help="World seed (network, history, order stream).")] = 11,
    days: Annotated[int, typer.Option(min=1, help="Simulated days in the backtest.")] = 7,
    policies: Annotated[
        str, typer.Option(help=f"Comma-separated, any of {','.join(POLICIES)}.")
    ] = ",".join(POLICIES),
    inventory_accuracy: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of node×SKU records reconciled with the shelf twice a day during the "
            "backtest (1.0 = perfect records); default: the world's own counting.",
        ),
    ] = None,
    history_days: Annotated[
        int | None, typer.Option(min=14, help="Training history before the backtest.")
    ] = None,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Routing policy YAML for every policy (cost terms)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Policies run in parallel processes.")] = 2,
    work_dir: Annotated[
        Path, typer.Option(help="Where trained worlds are kept (reused across runs).")
    ] = Path(".routecast/backtest"),
    out: Annotated[
        Path | None, typer.Option(help="Directory for backtest.json and the run's ledgers.")
    ] = None,
    bound: Annotated[
        bool, typer.Option(help="Also solve the perfect-foresight bound and the gap closed.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")
    ] = False,
) -> None:
    """Replay one simulated order stream against routing policies; KPIs from outcomes."""
    names = tuple(p.strip() for p in policies.split(",") if p.strip())
    bad = [p for p in names if p not in POLICIES]
    if not names or bad:
        typer.echo(
            f"--policies: unknown {bad or 'empty list'}; choose from {', '.join(POLICIES)}",
            err=True,
        )
        raise typer.Exit(2)
    if scale not in ("small", "medium", "large"):
        typer.echo("--scale must be small, medium or large", err=True)
        raise typer.Exit(2)
    spec = BacktestSpec(
        scale=scale,
        seed=seed,
        days=days,
        policies=names,
        history_days=history_days,
        inventory_accuracy=inventory_accuracy,
        workers=workers,
        policy_file=policy_file,
        work_dir=work_dir,
        progress=True,
    )
    result = run_backtest(spec, out, bound=bound)
    if out is not None:
        from simulation.backtest.report import write_report

        write_json(result, out / "backtest.json")
        written = write_report(result, out)
        typer.echo(
            f"wrote {out / 'backtest.json'} and {', '.join(map(str, written.values()))}", err=True
        )
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    width = max(len(p) for p in names)
    typer.echo(f"{'kpi':<22}" + "".join(f"{p:>{max(width, 12) + 2}}" for p in names))
    for k in KPI_NAMES:
        row = "".join(f"{result['policies'][p][k]:>{max(width, 12) + 2}.4g}" for p in names)
        typer.echo(f"{k:<22}{row}")
    if "gap_closed" in result:
        gaps = ", ".join(
            f"{p} {v:.2f}" if v is not None else f"{p} –" for p, v in result["gap_closed"].items()
        )
        typer.echo(f"gap closed (distance → bound, total cost): {gaps}")
    typer.echo(f"{result['orders']} orders × {len(names)} policies in {result['seconds']} s")
