"""``routecast eval``: score the models on real public data through the Feast pipeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

eval_app = typer.Typer(
    help="Evaluate the models on real data (Olist, FreshRetailNet); prints JSON.",
    no_args_is_help=True,
)


def _emit(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from exc


@eval_app.command("olist")
def olist(
    train: Annotated[Path, typer.Option(help="Olist CSV directory to learn from.")],
    test: Annotated[Path, typer.Option(help="Olist CSV directory to evaluate on.")],
    cut: Annotated[
        str, typer.Option(help="Learn before this date, test from it on.")
    ] = "2018-03-01",
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep the Feast repository here (default: temporary).")
    ] = None,
) -> None:
    """Delivery-time quantiles (P50, P90) against Olist's promise and a lane median."""
    from training.realdata.olist_eval import evaluate_olist

    try:
        _emit(evaluate_olist(train, test, cut=cut, work_dir=work_dir))
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)


@eval_app.command("olist-backtest")
def olist_backtest(
    data: Annotated[Path, typer.Option(help="Olist CSV directory.")],
    cuts: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated pseudo-cuts, all before the real cut "
            "(default: the three the model was tuned on)."
        ),
    ] = None,
    horizon: Annotated[int, typer.Option(help="Days scored after each pseudo-cut.")] = 56,
) -> None:
    """Backtests inside the training period: how the Olist modelling choices were made."""
    from training.realdata.olist_eval import BACKTEST_CUTS, backtest_olist

    chosen = (
        BACKTEST_CUTS if cuts is None else tuple(c.strip() for c in cuts.split(",") if c.strip())
    )
    try:
        _emit(backtest_olist(data, cuts=chosen, horizon_days=horizon))
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)


@eval_app.command("freshretail")
def freshretail(
    train: Annotated[Path, typer.Option(help="FreshRetailNet hourly parquet to learn from.")],
    test: Annotated[Path, typer.Option(help="Parquet to evaluate on (same file: store split).")],
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep the Feast repositories here (default: temporary).")
    ] = None,
) -> None:
    """Next-day stockout risk (calibrated) against yesterday's stock-out share."""
    from training.realdata.fresh_eval import evaluate_freshretail

    try:
        _emit(evaluate_freshretail(train, test, work_dir=work_dir))
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
