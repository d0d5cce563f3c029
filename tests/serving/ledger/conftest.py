"""Ledger fixtures: every test runs against SQLite (tmp file) and PostgreSQL (own database).

PostgreSQL is skipped with a reason when it is not reachable, and fails under CI=true.
After each test the ledger-wide invariants must hold.
"""

from __future__ import annotations

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
    InitialStock,
    Ledger,
    NodeRecord,
    create_schema,
    make_engine,
)
from tests.support.services import PG_HOST, PG_PORT, postgres_database  # noqa: E402


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One throwaway database per session; each test gets its own schema inside it."""
    with postgres_database("routecast_ledger") as name:
        yield name


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
            InitialStock("dc1", "A", 10),
            InitialStock("dc1", "B", 5),
            InitialStock("st1", "A", 3),
            InitialStock("st2", "B", 7),
        ],
        event_time=T0 - timedelta(days=1),
    )
    yield led
    assert led.invariant_violations() == []
