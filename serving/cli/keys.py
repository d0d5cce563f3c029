"""``routecast keys``: create and revoke API keys."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from serving.cli.common import console, ledger_engine

app = typer.Typer(help="API keys with scopes (route, orders, inventory, admin).")


@app.command("create")
def keys_create(
    scope: Annotated[
        list[str], typer.Option(help="route, orders, inventory or admin; repeat for more")
    ],
    name: Annotated[str, typer.Option(help="Who the key is for")] = "",
) -> None:
    """Create an API key; the raw key is printed once and only its digest is stored."""
    from serving.key_store import SqlKeyStore

    try:
        raw = SqlKeyStore(ledger_engine()).create(set(scope), name)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    sys.stdout.write(raw + "\n")


@app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id part of rc_<id>_<secret>")],
) -> None:
    """Revoke a key by its id."""
    from serving.key_store import SqlKeyStore

    if not SqlKeyStore(ledger_engine()).revoke(key_id):
        console.print(f"[red]no key with id {key_id}[/red]")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
