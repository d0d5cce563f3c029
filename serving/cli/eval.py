"""``routecast eval`` and ``routecast import``: real data through the Feast pipeline.

``eval olist`` / ``eval freshretail`` read the public layouts; ``import`` maps anyone's
exports onto the canonical tables with a YAML file, and ``eval delivery`` / ``eval
stockout`` score the same models on such an import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

eval_app = typer.Typer(
    help="Evaluate the models on real data (Olist, FreshRetailNet, your own import); prints JSON.",
    no_args_is_help=True,
)


def _emit(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2) from exc


def _run(report: Callable[[], dict[str, Any]]) -> None:
    """Print the report as JSON; a missing file or bad input is a clear error, exit code 2."""
    try:
        _emit(report())
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)


WorkDir = Annotated[
    Path | None, typer.Option(help="Keep the Feast repositories here (default: temporary).")
]
Cut = Annotated[str, typer.Option(help="Learn before this date, test from it on.")]


@eval_app.command("olist")
def olist(
    train: Annotated[Path, typer.Option(help="Olist CSV directory to learn from.")],
    test: Annotated[Path, typer.Option(help="Olist CSV directory to evaluate on.")],
    cut: Cut = "2018-03-01",
    work_dir: WorkDir = None,
) -> None:
    """Delivery-time quantiles (P50, P90) against Olist's promise and a lane median."""
    from training.realdata.olist_eval import evaluate_olist

    _run(lambda: evaluate_olist(train, test, cut=cut, work_dir=work_dir))


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
    _run(lambda: backtest_olist(data, cuts=chosen, horizon_days=horizon))


@eval_app.command("freshretail")
def freshretail(
    train: Annotated[Path, typer.Option(help="FreshRetailNet hourly parquet to learn from.")],
    test: Annotated[Path, typer.Option(help="Parquet to evaluate on (same file: store split).")],
    work_dir: WorkDir = None,
) -> None:
    """Next-day stockout risk (calibrated) against yesterday's stock-out share."""
    from training.realdata.fresh_eval import evaluate_freshretail

    _run(lambda: evaluate_freshretail(train, test, work_dir=work_dir))


@eval_app.command("delivery")
def delivery(
    data: Annotated[Path, typer.Option(help="Directory written by `routecast import`.")],
    cut: Cut = "2018-03-01",
    work_dir: WorkDir = None,
) -> None:
    """Delivery-time quantiles on an imported history (same path as `eval olist`)."""
    from features.adapters.mapping import read_delivery_history
    from training.realdata.olist_eval import evaluate_delivery

    def report() -> dict[str, Any]:
        tables = read_delivery_history(data)
        return evaluate_delivery(tables, tables, cut=cut, work_dir=work_dir)

    _run(report)


@eval_app.command("stockout")
def stockout(
    data: Annotated[Path, typer.Option(help="Directory written by `routecast import`.")],
    test_data: Annotated[
        Path | None,
        typer.Option(help="Another import to test on (default: split the stores of --data)."),
    ] = None,
    work_dir: WorkDir = None,
) -> None:
    """Next-day stockout risk on imported hourly availability (same path as `eval freshretail`)."""
    from features.adapters.mapping import read_hourly_availability
    from training.realdata.fresh_eval import evaluate_stockout

    def report() -> dict[str, Any]:
        train = read_hourly_availability(data)
        test = None if test_data is None else read_hourly_availability(test_data)
        return evaluate_stockout(train, test, work_dir=work_dir)

    _run(report)


def import_history(
    mapping: Annotated[Path, typer.Option(help="YAML mapping (see examples/mappings/).")],
    source: Annotated[Path, typer.Option(help="Directory holding your CSV/parquet exports.")],
    out: Annotated[Path, typer.Option(help="Directory to write the canonical tables to.")],
) -> None:
    """Map your own exports onto the canonical tables; list every rejected row and why."""
    from features.adapters.mapping import run_import

    try:
        report = run_import(mapping, source, out)
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
        return
    _emit(report)
    if report["rejected"] or report["excluded"]:
        typer.echo(
            f"{report['rejected']} row(s) rejected and {report['excluded']} excluded, "
            f"each with its reason in {report['rejected_rows_file']}",
            err=True,
        )
