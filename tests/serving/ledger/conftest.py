"""Ledger fixtures: every test runs against SQLite (tmp file) and PostgreSQL (own database).

PostgreSQL is skipped with a reason when it is not reachable, and fails under CI=true.
After each test the ledger-wide invariants must hold.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

# pytest puts ``tests/`` on sys.path (rootless conftest), where the directory ``tests/serving``
# would shadow the editable-installed ``serving`` package as a namespace package.
_REPO = str(Path(__file__).resolve().parents[3])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)
if getattr(sys.modules.get("serving"), "__file__", "") is None:
    del sys.modules["serving"]

from ledger_testkit import T0, Clock  # noqa: E402

from serving.ledger import (  # noqa: E402
    Ledger,
    NodeRecord,
    StockRow,
    create_schema,
    make_engine,
)

PG_HOST, PG_PORT = "127.0.0.1", 5432
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1.0):
            return True
    except OSError:
        return False


def _admin() -> object:
    import psycopg

    return psycopg.connect(
        f"host={PG_HOST} port={PG_PORT} user=postgres dbname=postgres", autocommit=True
    )


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One throwaway database per session; each test gets its own schema inside it."""
    if not _postgres_reachable():
        message = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true requires it)")
        pytest.skip(f"{message}; start it to run the PostgreSQL half of the ledger tests")
    name = f"routecast_ledger_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}", pool_size=8, max_overflow=8)
        create_schema(eng)
        yield eng
        eng.dispose()
        return
    database = request.getfixturevalue("pg_database")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    base = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{database}"
    admin = make_engine(base, pool_size=1, max_overflow=0)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng = make_engine(f"{base}?options=-csearch_path%3D{schema}", pool_size=8, max_overflow=8)
    try:
        create_schema(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(engine: Engine, clock: Clock) -> Iterator[Ledger]:
    led = Ledger(engine, clock=clock, max_rejections=3)
    led.upsert_nodes(
        [
            NodeRecord(
                "dc1",
                "dc",
                -23.5,
                -46.6,
                priority=1,
                timezone="America/Sao_Paulo",
                daily_capacity=500,
            ),
            NodeRecord(
                "st1",
                "store",
                -22.9,
                -43.2,
                priority=2,
                timezone="America/Sao_Paulo",
                daily_capacity=50,
            ),
            NodeRecord("st2", "store", -19.9, -43.9, priority=3, timezone="UTC", daily_capacity=50),
        ]
    )
    led.load_stock(
        [
            StockRow("dc1", "A", 10),
            StockRow("dc1", "B", 5),
            StockRow("st1", "A", 3),
            StockRow("st2", "B", 7),
        ],
        event_time=T0 - timedelta(days=1),
    )
    yield led
    assert led.invariant_violations() == []
