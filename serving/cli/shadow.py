"""``routecast shadow report``: how the shadow routing mode differs from the live decisions."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

shadow_app = typer.Typer(
    help="Shadow mode: a second routing mode planned beside every live order, never reserved.",
    no_args_is_help=True,
)


def _fmt(x: Any, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _table(summary: dict[str, Any]) -> Table:
    table = Table(
        title=f"shadow vs live since {summary['since'] or 'the first decision'} "
        f"({summary['decisions']} decisions)"
    )
    for col in ("metric", *summary["modes"]):
        table.add_column(col if col == "metric" else f"shadow={col}", justify="right")
    rows: list[tuple[str, Any]] = [
        ("decisions", lambda m: m["decisions"]),
        ("compared (failed)", lambda m: f"{m['compared']} ({m['failed']})"),
        ("live modes", lambda m: ", ".join(f"{k} {v}" for k, v in m["live_modes"].items())),
        ("different nodes", lambda m: m["different_nodes"]),
        ("different nodes share", lambda m: _fmt(m["different_nodes_share"])),
        (
            "cost live / shadow",
            lambda m: f"{_fmt(m['cost']['live_mean'], 2)} / {_fmt(m['cost']['shadow_mean'], 2)}",
        ),
        (
            "cost delta mean / total",
            lambda m: f"{_fmt(m['cost']['delta_mean'], 2)} / {_fmt(m['cost']['delta_total'], 2)}",
        ),
        (
            "P(stockout) live / shadow",
            lambda m: (
                f"{_fmt(m['p_stockout']['live_mean'])} / {_fmt(m['p_stockout']['shadow_mean'])}"
            ),
        ),
        (
            "P(late) live / shadow",
            lambda m: f"{_fmt(m['p_late']['live_mean'])} / {_fmt(m['p_late']['shadow_mean'])}",
        ),
        (
            "shipments/order live / shadow",
            lambda m: (
                f"{_fmt(m['shipments_per_order']['live_mean'], 2)} / "
                f"{_fmt(m['shipments_per_order']['shadow_mean'], 2)}"
            ),
        ),
        ("risk priced by models", lambda m: m["model_basis"]),
    ]
    for label, get in rows:
        table.add_row(label, *(str(get(m)) for m in summary["modes"].values()))
    return table


@shadow_app.command("report")
def shadow_report(
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 time or an age like 24h, 7d; default all")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Share of orders whose nodes differ, cost and predicted-risk deltas, shipments per order,
    per shadow mode, from the decisions stored in the ledger (same numbers as
    GET /v1/shadow/summary)."""
    from serving.cli.common import ledger_engine
    from serving.ledger import Ledger
    from serving.shadow import parse_since, report

    try:
        at = parse_since(since)
    except ValueError as exc:
        typer.echo(f"error: --since: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = report(Ledger(ledger_engine()), at)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    console = Console()
    if not summary["modes"]:
        console.print(
            "no shadow plans stored yet: set `shadow: {mode: cost}` (or another mode) in the "
            "policy file (ROUTECAST_POLICY_FILE) and route some orders"
        )
        return
    console.print(_table(summary))
