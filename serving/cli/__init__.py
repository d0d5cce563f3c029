"""The ``routecast`` command: one module per command group, assembled here."""

from __future__ import annotations

import typer

from serving.cli import (
    eval,
    events,
    features,
    history,
    inventory,
    keys,
    loop,
    models,
    operate,
    retrain,
    service,
    shadow,
)
from simulation.backtest.cli import backtest

app = typer.Typer(help="routecast: predictive order routing.", no_args_is_help=True)
app.command()(service.demo)
app.command()(service.serve)
app.command("route")(service.route_cmd)
app.command()(models.train)
app.command()(models.promote)
app.command("retrain")(retrain.retrain)
app.command("loop")(loop.loop)
app.command("operate")(operate.operate)
app.command()(backtest)
app.add_typer(features.app, name="features")
app.add_typer(eval.eval_app, name="eval")
app.command("import")(eval.import_history)
app.add_typer(keys.app, name="keys")
app.add_typer(inventory.app, name="inventory")
app.add_typer(shadow.shadow_app, name="shadow")
app.add_typer(events.app, name="events")
app.add_typer(history.app, name="history")

__all__ = ["app"]
