"""The CI form of ``make reliability``: the same storms, faults and fuzzing at small sizes.

Each must hold exactly as in the full run: zero oversold, lost or half-reserved, zero 5xx other
than a clean 503, every answer as the OpenAPI document says, every bad input a 4xx naming its
field. Sizes are kept small so the whole suite stays fast; the full run reports the numbers.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from benchmarks.fuzz import openapi_conformance, run_catalogue, schema_fuzz, sender
from benchmarks.http_storm import (
    kill_a_worker,
    private_postgres,
    serve,
    settle_and_verify,
    storm,
)
from benchmarks.storm import run_storm
from serving.app import create_app
from serving.demo import DemoReport
from serving.settings import Settings
from tests.support.services import postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reliability")]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"
        return
    with postgres_database("rc_rel") as name:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def test_ledger_storm_short(database_url: str) -> None:
    result = run_storm(database_url, processes=2, threads=3, seconds=60, max_ops=40)
    assert result["operations"] >= 200
    assert result["problems"] == [] and result["problem_count"] == 0
    assert result["unexpected_errors"] == {}
    assert (result["oversold_units"], result["lost_orders"]) == (0, 0)
    assert result["idempotent_replays"] > 0


def test_fuzz_and_catalogue_short(
    database_url: str, demo_home: tuple[Settings, DemoReport]
) -> None:
    settings, _ = demo_home
    app = create_app(settings.model_copy(update={"database_url": database_url}), background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        runtime = app.state.runtime
        headers = {"Authorization": "Bearer " + runtime.keys.create({"admin"}, "fuzz")}
        fz = schema_fuzz(app, headers, examples=8).as_dict()
        assert fz["requests"] >= 150
        assert (fz["server_errors"], fz["schema_mismatches"]) == (0, 0), fz["examples"]
        client.headers.update(headers)

        conforms = openapi_conformance(app)
        cat = run_catalogue(sender(client), runtime.nodes[0].node_id, conforms)
        assert cat["failures"] == [], cat["failures"]
        assert cat["schema_mismatches"] == [], cat["schema_mismatches"]
        # the judge can fail: an answer the document does not describe is named
        teapot = httpx.Response(418, json={}, request=httpx.Request("POST", "http://t/v1/route"))
        teapot.elapsed = timedelta(0)  # read as if it came over the wire
        assert "418 is not documented" in conforms("POST", "/v1/route", teapot)
        wrong = httpx.Response(
            200, json={"unexpected": True}, request=httpx.Request("GET", "http://t/v1/skus")
        )
        wrong.elapsed = timedelta(0)
        assert conforms("GET", "/v1/skus", wrong).startswith("body does not match")
        assert runtime.ledger.invariant_violations() == []


def test_sigkill_a_worker_mid_storm(demo_home: tuple[Settings, DemoReport], tmp_path: Path) -> None:
    settings, _ = demo_home
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with serve(settings.home, url, workers=2) as server:
        run = storm(server, clients=4, seconds=12, fault=kill_a_worker(server), fault_at=0.4)
        result = settle_and_verify(server, url, run)
    assert result["fault"].startswith("SIGKILL"), result
    assert result["operations"] > 20, result
    assert result["server_errors_5xx_not_503"] == 0, result["examples_5xx"]
    assert result["503_without_retry_after"] == 0
    assert (result["oversold_units"], result["orders_unreadable"]) == (0, 0), result
    assert result["invariant_violations"] == [] and result["problems"] == [], result


def test_postgres_restart_mid_storm(demo_home: tuple[Settings, DemoReport]) -> None:
    """A private PostgreSQL (own data directory and port; the shared server is never touched)
    restarted under load: clean 503s with Retry-After during the blip, then recovery."""
    settings, _ = demo_home
    # not tmp_path: the postgres account must be able to reach the data directory
    with (
        tempfile.TemporaryDirectory(prefix="rc-pg-") as tmp,
        private_postgres(Path(tmp) / "pg") as pg,
    ):
        if pg is None:
            pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) on this machine")
        url, restart = pg
        with serve(settings.home, url, workers=2) as server:
            run = storm(server, clients=3, seconds=15, fault=restart, fault_at=0.3)
            result = settle_and_verify(server, url, run)
    assert result["fault"].startswith("PostgreSQL fast restart"), result
    assert result["operations"] > 10, result
    assert result["server_errors_5xx_not_503"] == 0, result["examples_5xx"]
    assert result["503_without_retry_after"] == 0
    assert (result["oversold_units"], result["orders_unreadable"]) == (0, 0), result
    assert result["invariant_violations"] == [] and result["problems"] == [], result
    assert result["ready_after"] == 200, result
