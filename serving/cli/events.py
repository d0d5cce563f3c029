"""``routecast events``: deliver the outbox to the configured webhooks from its own process."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from serving.cli.common import console, ledger_engine, settings

app = typer.Typer(help="Events out: deliver the outbox to the configured webhooks.")


@app.command("dispatch")
def events_dispatch(
    once: Annotated[bool, typer.Option(help="One pass over what is due, then exit.")] = False,
) -> None:
    """Deliver pending events (signed) to ROUTECAST_WEBHOOKS; the API process does this too."""
    from serving.ledger import Ledger
    from serving.webhooks import Dispatcher

    current = settings()
    if not current.webhooks:
        console.print("[red]no webhook endpoints configured: set ROUTECAST_WEBHOOKS[/red]")
        raise typer.Exit(2)
    dispatcher = Dispatcher.from_settings(Ledger(ledger_engine()), current)
    try:
        while True:
            stats = dispatcher.run_once()
            if stats.attempted:
                console.print(
                    f"delivered {stats.delivered}, retrying {stats.failed}, dead {stats.dead}"
                )
            for err in stats.errors[:5]:
                console.print(f"  [yellow]{err}[/yellow]")
            if once:
                return
            time.sleep(current.webhook_poll_seconds)
    finally:
        dispatcher.stop()
