"""``routecast inventory``: ledger maintenance and label export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli.common import console, ledger_engine

app = typer.Typer(help="Inventory ledger maintenance.")


@app.command("check")
def inventory_check(
    repair: Annotated[bool, typer.Option(help="Reset drifted rows to the movement log.")] = False,
) -> None:
    """Compare stock rows with the append-only movement log; optionally repair drift."""
    from serving.ledger import Ledger

    report = Ledger(ledger_engine()).check(repair=repair)
    console.print(
        f"checked {report.checked} node×SKU rows; drifted: {len(report.drifted)}"
        + (" (repaired)" if report.repaired and report.drifted else "")
    )
    for d in report.drifted[:50]:
        console.print(
            f"  {d.node_id} {d.sku}: row on_hand={d.row_on_hand} reserved={d.row_reserved} "
            f"log on_hand={d.log_on_hand} reserved={d.log_reserved}"
        )
    raise typer.Exit(1 if report.drifted and not repair else 0)


@app.command("labels")
def inventory_labels(
    out: Annotated[
        Path, typer.Option(help="Parquet file in the canonical allocations format")
    ] = Path("allocation_labels.parquet"),
) -> None:
    """Export ledger allocations and node rejections as stockout-risk training labels."""
    from serving.label_export import export_labels

    n = export_labels(ledger_engine(), out)
    console.print(f"wrote {n} labelled allocations to {out}")
