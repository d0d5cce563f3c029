"""HTTP storm with faults: the real server (uvicorn, several worker processes) under many
clients, while a worker is SIGKILLed or the database restarts.

Clients place (with an ``Idempotency-Key``), cancel, ship, read and receive stock on a few
hot SKUs. Every answer is recorded. A request whose connection died has an unknown outcome;
afterwards it is retried with the same key, which must settle it (201 replay or a clean
refusal) without reserving twice. Then: no 500, every acknowledged order readable in the
state it was acknowledged in, and the ledger's invariants hold.

The PostgreSQL restart uses a private server (own data directory and port, started with the
machine's ``initdb``/``pg_ctl``), never a shared one.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import free_port, launch, stop, wait_for


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    key: str

    def workers(self) -> list[int]:
        # uvicorn's supervisor may spawn a resource tracker too; workers import the app.
        return [
            p
            for p in _children(self.process.pid)
            if "multiprocessing.resource_tracker" not in _cmdline(p)
        ]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@contextmanager
def serve(home: Path, database_url: str, *, workers: int = 2) -> Iterator[Server]:
    """Run ``routecast`` under uvicorn on an ephemeral port against ``database_url``; yields
    once it answers ``/healthz`` (a fault run needs it listening, not ready)."""
    launched = launch(
        home,
        database_url,
        workers=workers,
        # claims of requests a fault cut short expire within the run's settle phase
        env={"ROUTECAST_IDEMPOTENCY_CLAIM_SECONDS": "3"},
        key_name="storm",
    )
    try:
        # start-up on a busy shared machine is slow
        wait_for(launched, "/healthz", lambda r: r.status_code == 200, timeout=600, poll=0.5)
        yield Server(launched.url, launched.process, launched.key)
    finally:
        stop(launched, timeout=20)


@dataclass
class Record:
    statuses: Counter[int] = field(default_factory=Counter)
    ops: Counter[str] = field(default_factory=Counter)
    five_hundreds: list[str] = field(default_factory=list)
    retry_after_missing: int = 0
    unknown: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (key, body)
    acked: dict[str, str] = field(default_factory=dict)  # order id -> last acknowledged status
    dropped: int = 0
    crashed: list[str] = field(default_factory=list)  # client threads the harness lost
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Answered(Exception):
    """A step of a two-request operation got a final answer; it is recorded as the operation's."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response


def _client(server: Server, rec: Record, skus: list[str], seconds: float, seed: int) -> None:
    """One client; if the harness itself breaks, that is recorded, never silently lost."""
    try:
        _client_loop(server, rec, skus, seconds, seed)
    except Exception as exc:
        with rec.lock:
            rec.crashed.append(f"client {seed}: {type(exc).__name__}: {exc}"[:300])


def _client_loop(server: Server, rec: Record, skus: list[str], seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    headers = {"Authorization": f"Bearer {server.key}"}
    mine: list[str] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        while time.monotonic() < deadline:
            op = rng.choices(["place", "cancel", "ship", "read", "receive"], [45, 15, 15, 15, 10])[
                0
            ]
            if op != "place" and op != "receive" and not mine:
                op = "place"
            key = body = None
            try:
                if op == "place":
                    oid = f"S-{uuid.uuid4().hex[:12]}"
                    key = "k-" + oid
                    body = {
                        "order_id": oid,
                        "destination": {
                            "country": "US",
                            "postal_code": rng.choice(["10001", "94105", "60601", "73301"]),
                        },
                        "lines": [
                            {"line_id": "1", "sku": rng.choice(skus), "qty": rng.randint(1, 2)}
                        ],
                        "mode": "cost",
                    }
                    r = http.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
                    if r.status_code == 201:
                        mine.append(oid)
                        with rec.lock:
                            rec.acked[oid] = "placed"
                elif op == "cancel":
                    oid = rng.choice(mine)
                    r = http.post(f"/v1/orders/{oid}/cancel")
                    if r.status_code == 200:
                        mine.remove(oid)
                        with rec.lock:
                            rec.acked[oid] = r.json()["status"]
                elif op == "ship":
                    oid = rng.choice(mine)
                    r = http.post(f"/v1/orders/{oid}/shipments", json={})
                    if r.status_code == 200:
                        mine.remove(oid)
                        with rec.lock:
                            rec.acked[oid] = r.json()["status"]
                elif op == "read":
                    r = http.get(f"/v1/orders/{rng.choice(mine)}")
                else:
                    sku = rng.choice(skus)
                    r = http.get(f"/v1/inventory/{sku}")
                    if r.status_code != 200:  # e.g. a 503 while the database restarts
                        raise _Answered(r)
                    nodes = [n["node_id"] for n in r.json()["nodes"]]
                    event = {
                        "event_id": f"rcv-{uuid.uuid4().hex}",
                        "event_time": datetime.now(UTC).isoformat(),
                        "node_id": rng.choice(nodes),
                        "sku": sku,
                        "kind": "delta",
                        "qty": rng.randint(1, 4),
                    }
                    r = http.post("/v1/inventory/adjustments", json={"events": [event]})
            except _Answered as answered:
                r = answered.response
            except httpx.HTTPError:
                with rec.lock:
                    rec.dropped += 1
                    rec.ops[op] += 1
                    if op == "place" and key is not None and body is not None:
                        rec.unknown.append((key, body))
                time.sleep(0.2)
                continue
            with rec.lock:
                rec.ops[op] += 1
                rec.statuses[r.status_code] += 1
                if r.status_code >= 500 and r.status_code != 503:
                    rec.five_hundreds.append(f"{op} {r.status_code} {r.text[:200]}")
                if r.status_code == 503 and "retry-after" not in r.headers:
                    rec.retry_after_missing += 1
                if op == "place" and r.status_code == 503 and key is not None and body is not None:
                    rec.unknown.append((key, body))


def hot_skus(server: Server, n: int = 3) -> list[str]:
    """A few SKUs stocked at several nodes, each set to a small stock so clients collide."""
    headers = {"Authorization": f"Bearer {server.key}"}
    skus = httpx.get(
        server.url + "/v1/skus", params={"limit": n}, headers=headers, timeout=30
    ).json()
    chosen = [s["sku"] for s in skus[:n]]
    events = []
    for sku in chosen:
        for lv in httpx.get(f"{server.url}/v1/inventory/{sku}", headers=headers, timeout=30).json()[
            "nodes"
        ]:
            events.append(
                {
                    "event_id": f"hot-{uuid.uuid4().hex}",
                    "event_time": datetime.now(UTC).isoformat(),
                    "node_id": lv["node_id"],
                    "sku": sku,
                    "kind": "count",
                    "qty": 15,
                }
            )
    r = httpx.post(
        server.url + "/v1/inventory/adjustments",
        json={"events": events},
        headers=headers,
        timeout=60,
    )
    if r.status_code != 200:  # say why: a storm that cannot stock its SKUs measures nothing
        raise RuntimeError(f"stocking the hot SKUs failed: {r.status_code} {r.text[:500]}")
    return chosen


def storm(
    server: Server,
    *,
    clients: int,
    seconds: float,
    fault: Callable[[], str] | None = None,
    fault_at: float = 0.3,
    seed: int = 7,
) -> dict[str, Any]:
    """Run the clients; ``fault`` fires at ``fault_at`` × duration and returns what it did."""
    skus = hot_skus(server)
    rec = Record()
    threads = [
        threading.Thread(target=_client, args=(server, rec, skus, seconds, seed * 100 + i))
        for i in range(clients)
    ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    fault_note = ""
    if fault is not None:
        time.sleep(seconds * fault_at)
        fault_note = fault()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"record": rec, "seconds": elapsed, "fault": fault_note, "skus": skus}


def settle_and_verify(server: Server, database_url: str, run: dict[str, Any]) -> dict[str, Any]:
    """Retry unknown outcomes with their keys, then check every acknowledged order and the ledger."""
    from serving.ledger import Ledger, make_engine

    rec: Record = run["record"]
    headers = {"Authorization": f"Bearer {server.key}"}
    settled: Counter[int] = Counter()
    problems: list[str] = list(rec.crashed)
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
        deadline = time.monotonic() + 60
        while (ready := http.get("/readyz").status_code) != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        for key, body in rec.unknown:
            for _ in range(20):
                r = http.post("/v1/orders", json=body, headers={"Idempotency-Key": key})
                if r.status_code not in (409, 503) or r.json().get("type", "").endswith(
                    "unfillable"
                ):
                    break
                time.sleep(float(r.headers.get("retry-after", "1")))
            settled[r.status_code] += 1
            if r.status_code == 201:
                rec.acked.setdefault(body["order_id"], "placed")
            elif r.status_code >= 500:
                problems.append(f"retry of {key} still {r.status_code}")
        unreadable = 0
        for oid, status in rec.acked.items():
            r = http.get(f"/v1/orders/{oid}")
            if r.status_code != 200:
                unreadable += 1
                problems.append(f"acknowledged order {oid} answers {r.status_code}")
            elif status in ("cancelled", "shipped") and r.json()["status"] != status:
                problems.append(f"{oid}: acknowledged {status}, ledger says {r.json()['status']}")
    engine = make_engine(database_url)
    ledger = Ledger(engine)
    violations = ledger.invariant_violations()
    oversold = sum(max(0, -lv.available) for lv in ledger.availability())
    engine.dispose()
    statuses = rec.statuses
    total = sum(rec.ops.values())
    return {
        "operations": total,
        "by_kind": dict(rec.ops),
        "by_status": {str(k): v for k, v in sorted(statuses.items())},
        "ops_per_second": round(total / run["seconds"], 1),
        "seconds": round(run["seconds"], 1),
        "fault": run["fault"],
        "ready_after": ready,
        "connections_dropped": rec.dropped,
        "unknown_outcomes_retried": len(rec.unknown),
        "retries_settled": {str(k): v for k, v in sorted(settled.items())},
        "server_errors_5xx_not_503": len(rec.five_hundreds),
        "examples_5xx": rec.five_hundreds[:5],
        "answers_503": statuses.get(503, 0),
        "503_without_retry_after": rec.retry_after_missing,
        "orders_acknowledged": len(rec.acked),
        "orders_unreadable": unreadable,
        "oversold_units": oversold,
        "invariant_violations": violations[:10],
        "problems": problems[:10],
    }


def kill_a_worker(server: Server) -> Callable[[], str]:
    def fault() -> str:
        workers = server.workers()
        if not workers:
            return "no worker found to kill"
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        return f"SIGKILL worker {victim} of {len(workers)}"

    return fault


# -- a private PostgreSQL for the restart fault --------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


@contextmanager
def private_postgres(workdir: Path) -> Iterator[tuple[str, Callable[[], str]] | None]:
    """A throwaway PostgreSQL (own data dir and port); yields (url, restart) or None."""
    bindir = _pg_bin()
    if bindir is None:
        yield None
        return
    data = workdir / "pgdata"
    port = free_port()
    user: list[str] = []
    run_as: dict[str, Any] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: use the postgres account
        import pwd

        pw = pwd.getpwnam("postgres")
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.parent.chmod(0o755)  # the postgres account must reach its data directory
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        run_as = {"user": pw.pw_uid, "group": pw.pw_gid}
        user = []
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", *user],
        check=True,
        capture_output=True,
        **run_as,
    )
    opts = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(workdir / "pg.log")]
    subprocess.run([*ctl, "-w", "start"], check=True, capture_output=True, **run_as)

    def restart() -> str:
        t0 = time.perf_counter()
        subprocess.run(
            [*ctl, "-w", "-m", "fast", "restart"], check=True, capture_output=True, **run_as
        )
        return f"PostgreSQL fast restart ({time.perf_counter() - t0:.1f} s down)"

    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", restart
    finally:
        subprocess.run([*ctl, "-w", "-m", "immediate", "stop"], capture_output=True, **run_as)
        shutil.rmtree(workdir, ignore_errors=True)
