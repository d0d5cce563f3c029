"""``routecast loop``: export → features refresh → retrain + gate on an embedded schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from serving.cli.common import console, settings


def every(text: str | None, option: str) -> timedelta | None:
    from serving.shadow import parse_duration

    if text is None or text.strip().lower() in ("", "never", "off"):
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def print_run(run: object) -> None:
    from serving.scheduler import StepRun

    assert isinstance(run, StepRun)
    what = run.error or ", ".join(f"{k} {v}" for k, v in run.detail.items() if k != "steps")
    console.print(f"{run.at:%Y-%m-%d %H:%M} {run.name}: {run.seconds:.1f} s  {what}")


RefreshEvery = Annotated[
    str, typer.Option(help="Export and refresh batch features this often (90s, 30m, 1h, 1d).")
]
RetrainEvery = Annotated[
    str, typer.Option(help="Retrain challengers and run the gate this often; 'never' to skip.")
]


def loop(
    refresh_every: RefreshEvery = "1h",
    retrain_every: RetrainEvery = "24h",
    poll: Annotated[float, typer.Option(help="Seconds between checks of the schedule.")] = 30.0,
    once: Annotated[bool, typer.Option(help="Run what is due now once, then exit.")] = False,
) -> None:
    """Run the loop in the foreground (Ctrl-C stops it); each step is also its own command:
    `routecast history export`, `routecast features refresh`, `routecast retrain`."""
    from serving.scheduler import Scheduler

    refresh = every(refresh_every, "--refresh-every")
    if refresh is None:
        raise typer.BadParameter("the loop needs a refresh period", param_hint="--refresh-every")
    sched = Scheduler(
        settings(),
        refresh_every=refresh,
        retrain_every=every(retrain_every, "--retrain-every"),
        on_run=print_run,
    )
    if once:
        runs = sched.tick()
        raise typer.Exit(1 if any(r.error for r in runs) else 0)
    try:
        sched.run_forever(poll)
    except KeyboardInterrupt:
        console.print("loop stopped")
