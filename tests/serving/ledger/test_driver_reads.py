"""Reads through the driver's own cursor (stock rows, the movement log: every decision makes
them) fail the way every other database call fails: as SQLAlchemy's errors, which the service
answers 503 with ``Retry-After`` (or 500), and a session the server ended is not reused."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from serving.ledger import Ledger
from serving.ledger.db import driver_cursor


def test_a_refused_driver_read_is_a_sqlalchemy_error(engine: Engine) -> None:
    with (
        pytest.raises(DBAPIError) as caught,
        engine.connect() as conn,
        driver_cursor(conn) as cur,
    ):
        cur.execute("SELECT * FROM no_such_table")
    assert not isinstance(caught.value.orig, DBAPIError)  # the driver's error, kept as ``orig``
    assert "no_such_table" in str(caught.value.orig)


def test_a_session_ended_mid_read_is_unavailable_and_replaced(
    ledger: Ledger, engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL sessions only: the server ends one as a restart would")
    with (
        pytest.raises(OperationalError) as caught,
        engine.connect() as conn,
        driver_cursor(conn) as cur,
    ):
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert caught.value.connection_invalidated
    # the pool hands out a live session next: the decision's reads work again
    assert {(n, s) for n, s, _ in ledger.available_rows(["A"])} == {("dc1", "A"), ("st1", "A")}
    ledger.follow(ledger.movement_cursor())
