"""``routecast history``: the ledger's operations as canonical history for features and training."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from serving.cli.common import console, ledger_engine, settings

app = typer.Typer(help="Canonical history from the inventory ledger.")


def _day(text: str | None) -> date | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%d").date()


@app.command("export")
def history_export(
    since: Annotated[
        str | None,
        typer.Option(help="First UTC day (YYYY-MM-DD); default: the day after the last export."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop before this UTC day; default: today (closed days).")
    ] = None,
) -> None:
    """Write allocations, shipments, stock at each close and demand, one parquet per day."""
    from serving.history_export import export_history

    try:
        first, last = _day(since), _day(until)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; use YYYY-MM-DD", param_hint="--since/--until") from exc
    result = export_history(ledger_engine(), settings().raw_dir, since=first, until=last)
    span = f"{result.days[0]} … {result.days[-1]}" if result.days else "no new closed day"
    rows = ", ".join(f"{k} {v}" for k, v in result.rows.items())
    console.print(f"exported {span} to {result.out_dir}: {rows}")
