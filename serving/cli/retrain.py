"""``routecast retrain``: challengers trained on the simulated history plus the ledger's days."""

from __future__ import annotations

import json

import typer

from serving.cli.common import console, settings


def retrain() -> None:
    """Export the ledger, merge it into history, refresh features, train challengers, gate them."""
    from serving.retrain import retrain as run

    report = run(settings(), on_step=lambda name: console.print(f"{name}…"))
    console.print(json.dumps(report.__dict__, indent=2, default=str))
    raise typer.Exit(0)
