"""Top-level service commands: build the demo, serve the API, route one order."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from routing.domain import MODES, Mode
from serving.cli.common import console, read_json, settings
from serving.cli.loop import RetrainEvery, every, print_run


def demo(
    force: Annotated[bool, typer.Option(help="Rebuild everything from scratch.")] = False,
) -> None:
    """Build the embedded demo: world, features, models and registry (idempotent)."""
    from serving.demo import build_demo

    cfg = settings()
    console.print(f"[bold]routecast demo[/bold] in {cfg.home.resolve()} (scale {cfg.scale})")
    with console.status("starting") as status:
        report = build_demo(cfg, force=force, on_step=lambda s: status.update(f"[cyan]{s}…"))
    table = Table(title="demo build")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("result")
    for s in report.steps:
        table.add_row(s.name, f"{s.seconds:.1f}", s.note[:90])
    console.print(table)
    for name, metrics in report.metrics.items():
        mt = Table(title=f"{name}: test-window metrics")
        keys = [k for k in next(iter(metrics.values())) if k != "n"]
        mt.add_column("candidate")
        for k in keys:
            mt.add_column(k, justify="right")
        for cand, values in metrics.items():
            mt.add_row(cand, *(f"{values.get(k, float('nan')):.3f}" for k in keys))
        console.print(mt)
    console.print(f"MLflow UI: mlflow ui --backend-store-uri {cfg.tracking_uri}")
    if cfg.demo_key_file.exists():
        console.print(
            f"demo API key (all scopes): [bold]{cfg.demo_key_file.read_text().strip()}[/bold]"
        )
        console.print(f'  e.g. curl -H "Authorization: Bearer $(cat {cfg.demo_key_file})" ...')


#: Seconds a new uvicorn worker may take to start answering. Start-up loads models and
#: features before the first request; uvicorn's default of 5 s kills and restarts workers
#: that are merely starting, in a loop, whenever ``--workers`` is above 1.
WORKER_START_SECONDS = 120


def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
    refresh_every: Annotated[
        str | None,
        typer.Option(
            help="Also run the loop in this process: export and refresh features this often "
            "(90s, 30m, 1h); retrain per --retrain-every."
        ),
    ] = None,
    retrain_every: RetrainEvery = "24h",
    simulated_clock: Annotated[
        bool,
        typer.Option(
            "--simulated-clock",
            help="Read a clock an admin key sets (PUT /v1/admin/clock) instead of the wall "
            "clock, for `routecast operate --url`; the loop follows it. Never in production.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API (docs at /docs)."""
    import uvicorn

    from serving.scheduler import attach

    app: Any = "serving.main:app"  # each worker process imports and builds its own
    clock = None
    if simulated_clock:
        if workers != 1:
            raise typer.BadParameter(
                "a simulated clock lives in one process; use --workers 1", param_hint="--workers"
            )
        from serving import logs
        from serving.app import create_app
        from serving.sim_clock import shared_clock

        # one process: the app is built here, on the clock the embedded loop reads as well
        clock = shared_clock()
        logs.configure_from_environment()
        app = create_app(settings(), clock=clock)
    sched = None
    refresh = every(refresh_every, "--refresh-every")
    if refresh is not None:
        from serving.scheduler import Scheduler

        sched = Scheduler(
            settings(),
            refresh_every=refresh,
            retrain_every=every(retrain_every, "--retrain-every"),
            on_run=print_run,
        )
        if clock is not None:
            sched.clock = clock
        sched.waiting_for_clock = simulated_clock
        attach(sched)
        sched.start(poll_seconds=1.0 if simulated_clock else 30.0)
        console.print(f"loop: refresh every {refresh}, retrain every {retrain_every}")
    if simulated_clock:
        console.print("[yellow]simulated clock: time moves only through PUT /v1/admin/clock[/]")
    console.print(f"serving on http://{host}:{port}  (OpenAPI docs: http://{host}:{port}/docs)")
    console.print(f"operations console: http://{host}:{port}/console  (sign in with an API key)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=workers,
        timeout_worker_healthcheck=WORKER_START_SECONDS,
        log_config=None,
        access_log=False,
    )
    if sched is not None:
        sched.stop()


def route_cmd(
    order_file: Annotated[
        Path | None, typer.Argument(help="ORDER.json in the API's order format.")
    ] = None,
    order: Annotated[
        Path | None, typer.Option("--order", help="ORDER.json (same as the argument).")
    ] = None,
    network: Annotated[
        Path | None, typer.Option(help="NETWORK.json: route standalone, without server or store.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="|".join(MODES) + " (standalone default: cost)"),
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="POLICY.yaml")] = None,
) -> None:
    """Route one order and print the plan as JSON (nothing is reserved)."""
    from datetime import UTC, datetime

    order = order or order_file
    if order is None:
        console.print(
            "[red]give the order: routecast route ORDER.json (or --order ORDER.json)[/red]"
        )
        raise typer.Exit(2)
    order_doc = read_json(order, "order")
    if network is not None:
        import yaml

        from routing import (
            network_from_dict,
            order_from_dict,
            plan_to_dict,
            policy_from_dict,
            route,
        )
        from routing.errors import PredictionsRequired

        pol = None
        if policy is not None:
            pol = policy_from_dict(yaml.safe_load(policy.read_text(encoding="utf-8")) or {})
        try:
            plan = route(
                order_from_dict(order_doc),
                network_from_dict(read_json(network, "network")),
                mode=mode or Mode.COST,
                policy=pol,
                predictions=None,
                now=datetime.now(UTC),
            )
        except PredictionsRequired as exc:
            console.print(
                f"[red]{exc}[/red]\npredictive mode needs the trained models and live features: "
                "run it through the API (`routecast serve`) or without --network after `routecast demo`, "
                "or pick --mode cost|priority|distance|high_stock"
            )
            raise typer.Exit(2) from None
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        sys.stdout.write(json.dumps(plan_to_dict(plan), indent=2) + "\n")
        return
    from pydantic import ValidationError

    from serving.decide import decide
    from serving.problems import RoutecastError
    from serving.runtime import Runtime
    from serving.schemas.order import OrderIn

    try:
        body = OrderIn.model_validate({**order_doc, **({"mode": mode} if mode else {})})
    except ValidationError as exc:
        console.print(f"[red]invalid order:[/red] {exc}")
        raise typer.Exit(2) from None
    runtime = Runtime(settings())
    try:
        runtime.start(background=False)
        answer = decide(body, runtime)
    except (RoutecastError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(answer, indent=2, default=str) + "\n")
