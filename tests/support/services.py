"""External services the tests use: skip when absent locally, fail under CI=true.

One home for the reachability check and the throwaway PostgreSQL database.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
_PG_ADMIN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip with a reason outside CI; fail under CI, where the service must be running."""
    if reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires it; .ci/run starts it)")
    pytest.skip(f"{message}; start it to run this test")


def require_postgres() -> None:
    require_service("PostgreSQL", PG_HOST, PG_PORT)


def require_redis() -> None:
    require_service("Redis", REDIS_HOST, REDIS_PORT)


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A uniquely named database, dropped (even with open sessions) on exit; yields its name."""
    import psycopg

    require_postgres()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        yield name
    finally:
        with psycopg.connect(_PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
