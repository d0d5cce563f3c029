"""What every command group shares: the console, the settings, reading inputs, the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from serving.settings import Settings, get_settings

console = Console(stderr=True)


def settings() -> Settings:
    return get_settings()


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        console.print(f"[red]{what} file {path} does not exist[/red]")
        raise typer.Exit(2) from None
    except json.JSONDecodeError as exc:
        console.print(f"[red]{what} file {path} is not valid JSON: {exc}[/red]")
        raise typer.Exit(2) from None


def ledger_engine() -> Any:
    from serving.ledger import create_schema, make_engine

    engine = make_engine(settings().ledger_url)
    create_schema(engine)
    return engine
