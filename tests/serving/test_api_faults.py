"""A database outage, for real, on SQLite and PostgreSQL: every endpoint (the API-key lookup
included) answers a 503 problem with ``Retry-After``, ``/readyz`` says why, nothing is left
half-done, and the service recovers by itself when the database is back.

The PostgreSQL outage refuses new connections to this test's own database and terminates its
sessions (admin shutdown), so the shared server keeps serving everyone else. The SQLite outage
moves the ledger file's directory away.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.demo import DemoReport
from serving.ledger.errors import LedgerBusy
from serving.problems import error_problem
from serving.settings import Settings
from tests.serving.test_orders_api import _fresh_sku, _order, _set_stock
from tests.support.apps import api_client, ledger_url

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faults")]


class Outage:
    """Cut and restore one app's ledger database."""

    def __init__(self, backend: str, url: str, runtime: Any) -> None:
        self.backend, self.url, self.runtime = backend, url, runtime

    @contextmanager
    def cut(self) -> Iterator[None]:
        if self.backend == "sqlite":
            folder = Path(self.url.removeprefix("sqlite:///")).parent
            moved = folder.with_name(folder.name + "-away")
            self.runtime.engine.dispose()
            folder.rename(moved)
            try:
                yield
            finally:
                moved.rename(folder)
            return
        import psycopg

        name = self.url.rsplit("/", 1)[1]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
            )
            try:
                yield
            finally:
                c.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture(params=["sqlite", "postgres"])
def faulty(
    request: pytest.FixtureRequest,
    demo_home: tuple[Settings, DemoReport],
    tmp_path: Path,
) -> Iterator[tuple[TestClient, Any, Outage]]:
    settings, _ = demo_home
    (tmp_path / "db").mkdir()
    with (
        ledger_url(request.param, tmp_path / "db", "rc_faults") as url,
        api_client(settings, url, idempotency_claim_seconds=1.0) as (client, runtime),
    ):
        yield client, runtime, Outage(request.param, url, runtime)
        assert runtime.ledger.invariant_violations() == []


def _unavailable(r: Any) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert int(r.headers["retry-after"]) > 0
    assert "sqlalchemy" not in r.text.lower() and "select" not in r.text.lower()


def test_outage_is_a_503_with_retry_after_and_recovers(
    faulty: tuple[TestClient, Any, Outage],
) -> None:
    client, runtime, outage = faulty
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {runtime.nodes[0].node_id: 3})
    with outage.cut():
        _unavailable(client.get("/v1/skus"))  # fails in the API-key lookup
        _unavailable(client.post("/v1/orders", json=_order(sku), headers={"Idempotency-Key": "k1"}))
        _unavailable(client.get(f"/v1/inventory/{sku}"))
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any("database unavailable" in r for r in ready.json()["reasons"]), ready.json()
    assert client.get("/readyz").status_code == 200
    again = client.post("/v1/orders", json=_order(sku), headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201, again.text


def test_claim_taken_before_the_outage_expires_quickly(
    faulty: tuple[TestClient, Any, Outage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away between the idempotency claim and the reservation: the answer is
    a 503, nothing is reserved, and the same key works again a moment after recovery."""
    client, runtime, outage = faulty
    sku = _fresh_sku(client, runtime)
    _set_stock(client, sku, {runtime.nodes[0].node_id: 3})
    real_reserve = runtime.ledger.reserve_order

    def reserve_during_outage(*args: Any, **kwargs: Any) -> Any:
        with outage.cut():
            return real_reserve(*args, **kwargs)

    monkeypatch.setattr(runtime.ledger, "reserve_order", reserve_during_outage)
    body = _order(sku, order_id=f"blip-{uuid.uuid4().hex[:8]}")
    _unavailable(client.post("/v1/orders", json=body, headers={"Idempotency-Key": "blip"}))
    monkeypatch.setattr(runtime.ledger, "reserve_order", real_reserve)
    assert client.get(f"/v1/orders/{body['order_id']}").status_code == 404  # nothing half-done
    time.sleep(1.1)  # the claim outlives its request by idempotency_claim_seconds at most
    r = client.post("/v1/orders", json=body, headers={"Idempotency-Key": "blip"})
    assert r.status_code == 201, r.text


def test_ledger_busy_carries_retry_after() -> None:
    response = error_problem(LedgerBusy("the ledger stayed busy; retry the request"))
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
