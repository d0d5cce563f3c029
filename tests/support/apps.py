"""A real app on a throwaway ledger database (SQLite file or PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from serving.app import create_app
from serving.auth import SCOPES
from serving.settings import Settings
from tests.support.services import postgres_database


@contextmanager
def ledger_url(backend: str, folder: Path, prefix: str) -> Iterator[str]:
    """``sqlite``: a file in ``folder``; ``postgres``: its own database, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'ledger.db'}"
        return
    with postgres_database(prefix) as name:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@contextmanager
def api_client(settings: Settings, url: str, **update: Any) -> Iterator[tuple[TestClient, Any]]:
    """The app on ``url`` with an all-scopes key sent by default; server errors come back as
    responses (so tests can check them) instead of being raised."""
    app = create_app(settings.model_copy(update={"database_url": url, **update}), background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        runtime = app.state.runtime
        client.headers["Authorization"] = "Bearer " + runtime.keys.create(set(SCOPES), "tests")
        yield client, runtime
