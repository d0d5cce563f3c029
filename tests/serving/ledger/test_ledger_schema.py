"""Data-contract tests: the migrated schema is the code's schema and the database itself
refuses states that would mean overselling or a rewritten audit trail."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ledger_testkit import T0
from sqlalchemy import Engine, insert, text, update
from sqlalchemy.exc import DBAPIError

from serving import problems
from serving.ledger import (
    IdempotencyInFlight,
    IdempotencyMismatch,
    InsufficientStock,
    Ledger,
    LedgerBusy,
    OrderExists,
    OrderNotFound,
    Shortage,
)
from serving.ledger.tables import metadata, movements, stock


def test_migrations_produce_the_metadata_schema(ledger: Ledger, engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, metadata) == []


def test_database_refuses_negative_available(ledger: Ledger, engine: Engine) -> None:
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            update(stock).where(stock.c.node_id == "dc1", stock.c.sku == "A").values(reserved=11)
        )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            update(stock).where(stock.c.node_id == "dc1", stock.c.sku == "A").values(reserved=-1)
        )


def test_available_is_computed_by_the_database(ledger: Ledger, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(stock).where(stock.c.node_id == "dc1", stock.c.sku == "A").values(reserved=4)
        )
        available = conn.execute(
            text("SELECT available FROM stock WHERE node_id = 'dc1' AND sku = 'A'")
        ).scalar_one()
        assert available == 6
        conn.execute(
            update(stock).where(stock.c.node_id == "dc1", stock.c.sku == "A").values(reserved=0)
        )


def test_movement_log_is_append_only(ledger: Ledger, engine: Engine) -> None:
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(update(movements).values(d_on_hand=0))
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(movements.delete())
    with engine.begin() as conn:  # appending stays allowed
        conn.execute(
            insert(movements).values(
                at=T0,
                event_time=T0,
                node_id="dc1",
                sku="A",
                kind="delta",
                d_on_hand=0,
                d_reserved=0,
                d_shipped=0,
            )
        )


@pytest.mark.parametrize(
    ("exc", "status", "type_"),
    [
        (InsufficientStock([Shortage("dc1", "A", 3, 1)]), 409, "insufficient-stock"),
        (IdempotencyMismatch("k"), 422, "idempotency-key-reused"),
        (IdempotencyInFlight("k"), 409, "idempotency-in-flight"),
        (OrderExists("o1"), 409, "order-exists"),
        (OrderNotFound("o1"), 404, "order-not-found"),
        (LedgerBusy("busy"), 503, "ledger-busy"),
    ],
)
def test_errors_become_problem_responses(exc: Exception, status: int, type_: str) -> None:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    response = TestClient(app).get("/boom")
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith(type_)
    if isinstance(exc, InsufficientStock):
        assert body["missing"] == [{"node_id": "dc1", "sku": "A", "needed": 3, "available": 1}]


def test_a_database_at_the_head_is_recognised_without_running_alembic(
    ledger: Ledger, engine: Engine, tmp_path: Path
) -> None:
    from alembic.script import ScriptDirectory

    from serving.ledger.db import alembic_config, at_head, create_schema, make_engine, script_heads

    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert script_heads() == heads
    assert at_head(engine)  # the fixture migrated it
    (head,) = heads
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009_return_receipts'"))
    assert not at_head(engine)  # one behind: create_schema would migrate
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert not at_head(fresh)  # no alembic_version table yet
    create_schema(fresh)
    assert at_head(fresh)
    fresh.dispose()


def test_two_threads_migrating_two_databases_at_once_both_reach_the_head(tmp_path: Path) -> None:
    """Alembic's context is module-global; concurrent migrations in one process must not mix."""
    import threading

    from serving.ledger.db import at_head, create_schema, make_engine

    engines = [make_engine(f"sqlite:///{tmp_path / f'db{i}.db'}") for i in range(4)]
    errors: list[BaseException] = []

    def migrate(engine: Engine) -> None:
        try:
            create_schema(engine)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(at_head(e) for e in engines)
    for e in engines:
        e.dispose()
