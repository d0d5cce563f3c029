"""The ``routecast`` command: one way in for every room."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from serving.settings import Settings, get_settings

app = typer.Typer(help="routecast: predictive order routing.", no_args_is_help=True)
features_app = typer.Typer(help="Feature store: build tables, feast apply, materialize.")
app.add_typer(features_app, name="features")
from serving.cli_eval import eval_app  # noqa: E402

app.add_typer(eval_app, name="eval")
console = Console(stderr=True)


def _settings() -> Settings:
    return get_settings()


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        console.print(f"[red]{what} file {path} does not exist[/red]")
        raise typer.Exit(2) from None
    except json.JSONDecodeError as exc:
        console.print(f"[red]{what} file {path} is not valid JSON: {exc}[/red]")
        raise typer.Exit(2) from None


@app.command()
def demo(
    force: Annotated[bool, typer.Option(help="Rebuild everything from scratch.")] = False,
) -> None:
    """Build the embedded demo: world, features, models and registry (idempotent)."""
    from serving.demo import build_demo

    settings = _settings()
    console.print(
        f"[bold]routecast demo[/bold] in {settings.home.resolve()} (scale {settings.scale})"
    )
    with console.status("starting") as status:
        report = build_demo(settings, force=force, on_step=lambda s: status.update(f"[cyan]{s}…"))
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
    console.print(f"MLflow UI: mlflow ui --backend-store-uri {settings.tracking_uri}")
    if settings.demo_key_file.exists():
        console.print(
            f"demo API key (all scopes): [bold]{settings.demo_key_file.read_text().strip()}[/bold]"
        )
        console.print(f'  e.g. curl -H "Authorization: Bearer $(cat {settings.demo_key_file})" ...')


@app.command()
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (docs at /docs)."""
    import uvicorn

    console.print(f"serving on http://{host}:{port}  (OpenAPI docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "serving.main:app",
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@app.command("route")
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
        typer.Option(
            help="predictive|cost|priority|distance|high_stock (standalone default: cost)"
        ),
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
    order_doc = _read_json(order, "order")
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
                network_from_dict(_read_json(network, "network")),
                mode=mode or "cost",  # type: ignore[arg-type]
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
    from serving.schemas import OrderIn

    try:
        body = OrderIn.model_validate({**order_doc, **({"mode": mode} if mode else {})})
    except ValidationError as exc:
        console.print(f"[red]invalid order:[/red] {exc}")
        raise typer.Exit(2) from None
    runtime = Runtime(_settings())
    try:
        runtime.start(background=False)
        answer = decide(body, runtime)
    except (RoutecastError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(answer, indent=2, default=str) + "\n")


@features_app.command("build")
def features_build() -> None:
    """Compute feature tables from the canonical raw tables."""
    from features.compute import build_feature_tables

    s = _settings()
    paths = build_feature_tables(s.raw_dir, s.feature_dir, progress=True)
    console.print(f"built {len(paths)} feature tables in {s.feature_dir}")


@features_app.command("apply")
def features_apply() -> None:
    """`feast apply` the repository definitions to the registry."""
    from features.store import apply_definitions
    from serving.demo import open_feature_store

    s = _settings()
    names = apply_definitions(open_feature_store(s), s.feature_dir)
    console.print(f"applied: {', '.join(names)}")


@features_app.command("materialize")
def features_materialize() -> None:
    """Load the latest feature values into the online store (incremental, UTC)."""
    from features.store import materialize
    from serving.demo import open_feature_store

    materialize(open_feature_store(_settings()), None, progress=True)
    console.print("materialized")


keys_app = typer.Typer(help="API keys with scopes (route, orders, inventory, admin).")
app.add_typer(keys_app, name="keys")
inventory_app = typer.Typer(help="Inventory ledger maintenance.")
app.add_typer(inventory_app, name="inventory")


def _ledger_engine() -> Any:
    from serving.ledger import create_schema, make_engine

    engine = make_engine(_settings().ledger_url)
    create_schema(engine)
    return engine


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        list[str], typer.Option(help="route, orders, inventory or admin; repeat for more")
    ],
    name: Annotated[str, typer.Option(help="Who the key is for")] = "",
) -> None:
    """Create an API key; the raw key is printed once and only its digest is stored."""
    from serving.key_store import SqlKeyStore

    try:
        raw = SqlKeyStore(_ledger_engine()).create(set(scope), name)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(raw + "\n")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id part of rc_<id>_<secret>")],
) -> None:
    """Revoke a key by its id."""
    from serving.key_store import SqlKeyStore

    if not SqlKeyStore(_ledger_engine()).revoke(key_id):
        console.print(f"[red]no key with id {key_id}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@inventory_app.command("check")
def inventory_check(
    repair: Annotated[bool, typer.Option(help="Reset drifted rows to the movement log.")] = False,
) -> None:
    """Compare stock rows with the append-only movement log; optionally repair drift."""
    from serving.ledger import Ledger

    report = Ledger(_ledger_engine()).check(repair=repair)
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


@inventory_app.command("labels")
def inventory_labels(
    out: Annotated[
        Path, typer.Option(help="Parquet file in the canonical allocations format")
    ] = Path("allocation_labels.parquet"),
) -> None:
    """Export ledger allocations and node rejections as stockout-risk training labels."""
    from serving.label_export import export_labels

    n = export_labels(_ledger_engine(), out)
    console.print(f"wrote {n} labelled allocations to {out}")


@app.command()
def train(
    dask: Annotated[
        str | None,
        typer.Option(help="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786"),
    ] = None,
) -> None:
    """Train both models; the first versions become champion, later ones challenger."""
    from serving.demo import open_feature_store
    from training.pipeline import summary_rows, train_all
    from training.registry import configure

    s = _settings()
    client = configure(s.tracking_uri, s.artifact_dir)
    store = open_feature_store(s)

    def step(n: str) -> None:
        console.print(f"training {n}…")

    if dask:
        from training.distributed import DaskClusterError, train_all_dask

        try:
            results = train_all_dask(store, s.raw_dir, client, scheduler=dask, on_step=step)
        except DaskClusterError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    else:
        results = train_all(store, s.raw_dir, client, on_step=step)
    table = Table(title="test-window metrics")
    for col in ("model", "candidate", "metric", "value"):
        table.add_column(col)
    for name, cand, key, val in summary_rows(results):
        table.add_row(name, cand, key, f"{val:.4f}")
    console.print(table)
    for r in results:
        if r.version:
            console.print(
                f"registered {r.name} v{r.version.version} as {', '.join(r.version.aliases)}"
            )


@app.command()
def promote(
    model: Annotated[str, typer.Option(help="stockout, delivery or all")] = "all",
) -> None:
    """Gate each challenger against the champion on the newest holdout; promote winners."""
    from serving.demo import open_feature_store
    from training.promotion import promote as run_gate
    from training.registry import configure

    s = _settings()
    client = configure(s.tracking_uri, s.artifact_dir)
    store = open_feature_store(s)
    kinds = {"stockout": s.stockout_model, "delivery": s.delivery_model}
    failed = False
    for kind, name in kinds.items():
        if model not in ("all", kind):
            continue
        try:
            result = run_gate(client, store, s.raw_dir, name=name, kind=kind)
        except LookupError as exc:
            console.print(f"[yellow]{exc}[/yellow]")
            continue
        console.print(result.explain())
        failed |= not result.promoted
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    app()
