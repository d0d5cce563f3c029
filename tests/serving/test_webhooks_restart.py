"""At-least-once across a crash: the real server (uvicorn subprocess) is SIGKILLed while its
events are still undelivered; after a restart a real HTTP receiver gets every one of them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.demo import DemoReport
from serving.key_store import SqlKeyStore
from serving.ledger import Ledger, create_schema, make_engine
from serving.settings import Settings
from tests.serving.webhook_receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("orders")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "serving.main:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


def _order(sku: str, node_qty: int = 1) -> dict[str, Any]:
    return {
        "order_id": f"K-{uuid.uuid4().hex[:10]}",
        "channel": "web",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [{"line_id": "1", "sku": sku, "qty": node_qty}],
    }


def test_sigkill_with_pending_events_loses_none(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    settings, _ = demo_home
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    engine = make_engine(db)
    create_schema(engine)
    key = SqlKeyStore(engine).create({"route", "orders"}, "crash-test")
    with Receiver() as receiver:
        receiver.refuse_all = True  # events pile up undelivered
        env = {
            **os.environ,
            "ROUTECAST_HOME": str(settings.home),
            "ROUTECAST_SCALE": settings.scale,
            "ROUTECAST_SEED": str(settings.seed),
            "ROUTECAST_DATABASE_URL": db,
            "ROUTECAST_WEBHOOKS": json.dumps([receiver.endpoint("erp")]),
            "ROUTECAST_WEBHOOK_POLL_SECONDS": "0.2",
            "ROUTECAST_WEBHOOK_BACKOFF_SECONDS": "0.2",
            "ROUTECAST_WEBHOOK_BACKOFF_CAP_SECONDS": "1",
            "ROUTECAST_WEBHOOK_LEASE_SECONDS": "2",
            "ROUTECAST_JSON_LOGS": "0",
        }
        port = _free_port()
        log = tmp_path / "server.log"
        proc = _start(env, port, log)
        try:
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            )
            skus = [s["sku"] for s in api.get("/v1/skus", params={"limit": 40}).json()]
            placed: list[str] = []
            for sku in skus:
                r = api.post("/v1/orders", json=_order(sku))
                if r.status_code == 201:
                    placed.append(r.json()["order_id"])
                if len(placed) == 6:
                    break
            assert len(placed) == 6, "the demo world should fill six one-unit orders"
            api.post(f"/v1/orders/{placed[0]}/cancel").raise_for_status()
            api.post(f"/v1/orders/{placed[1]}/shipments", json={}).raise_for_status()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        assert receiver.unique() == {}  # nothing got through before the crash
        ledger = Ledger(engine)
        written = {e.event_id for e in ledger.events(limit=500)}
        by_order = {e.order_id for e in ledger.events(limit=500)}
        assert set(placed) <= by_order and len(written) >= 8
        pending = {e.event_id for e in ledger.events(delivery_status="pending", limit=500)}
        assert pending == written

        receiver.refuse_all = False
        proc = _start(env, port, log)
        try:
            got = receiver.wait_for(written, timeout=60)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert all(got[e].valid for e in written)
        for order_id in placed:
            seqs = [r.payload["sequence"] for r in got.values() if r.payload["subject"] == order_id]
            assert sorted(seqs) == list(range(1, len(seqs) + 1))
        delivered = {e.event_id for e in ledger.events(delivery_status="delivered", limit=500)}
        assert delivered >= written
    engine.dispose()
