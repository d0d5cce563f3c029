"""``routecast retrain``: challengers trained on the simulated history plus the ledger's days."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from serving.cli.common import console, settings


def parse_as_of(text: str | None) -> datetime | None:
    """``--as-of``: an ISO 8601 time (naive = UTC), or ``None`` for now."""
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; use ISO 8601, e.g. 2026-12-01T02:00Z") from exc
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def print_steps(steps: dict[str, float]) -> None:
    width = max((len(n) for n in steps), default=0)
    for name, seconds in steps.items():
        console.print(f"  {name:<{width}}  {seconds:8.2f} s")
    console.print(f"  {'total':<{width}}  {sum(steps.values()):8.2f} s")


def report_dict(report: Any) -> dict[str, Any]:
    out = dict(report.__dict__)
    promises = out.get("promises") or {}
    out["promises"] = {k: promises.get(k) for k in ("since", "target", "overall", "widened_lanes")}
    return out


def retrain(
    as_of: Annotated[
        str | None,
        typer.Option(help="Treat this time as now: days before it are closed (default: now)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export the ledger, merge it into history, refresh features, train challengers, gate them."""
    from serving.retrain import retrain as run

    report = run(settings(), now=parse_as_of(as_of), on_step=lambda name: console.print(f"{name}…"))
    console.print("step timings:")
    print_steps(report.steps)
    if as_json:
        print(json.dumps(report_dict(report), indent=2, default=str))
    else:
        console.print(
            f"exported {report.exported}; challengers {report.challengers}; "
            f"promoted {report.promoted}"
        )
        o = (report.promises or {}).get("overall") or {}
        if o.get("deliveries"):
            console.print(
                f"promises: coverage {o['coverage']:.3f} over {o['deliveries']} shipments, "
                f"P50 MAE {o['p50_mae_days']:.2f} d"
            )
    raise typer.Exit(0)
