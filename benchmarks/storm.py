"""Ledger storm: several processes × many threads of mixed operations on a few hot SKUs, then
every invariant and a recorded history checked for lost updates.

Each thread owns its orders (so its history is a total order per order) but all threads of all
processes fight over the same node×SKU rows, which is where overselling or a lost update
would show. Afterwards:

* the ledger's own invariants (on hand = available + reserved, movement log replays to every
  row, reserved = reserved allocations, nothing negative);
* every acknowledged order is readable and each line is in the state the client's history
  says (reserved, shipped, released, rejected): no lost or phantom update;
* per node×SKU, reserved and shipped equal what the acknowledged history implies, and on
  hand = initial + acknowledged receipts − acknowledged shipments − rejection write-offs;
* units oversold: shipped + reserved beyond what ever existed (must be 0).

Run: ``python -m benchmarks.storm --url sqlite:///.routecast/storm.db --processes 3 --threads 8``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

NODES = ("dc-a", "dc-b", "st-c", "st-d")
HOT_SKUS = ("HOT-1", "HOT-2", "HOT-3")
INITIAL_ON_HAND = 40
#: Outcomes the storm expects from a well-behaved ledger under contention.
EXPECTED_ERRORS = {"InsufficientStock", "OrderStateError"}
MIX = (("place", 40), ("cancel", 14), ("ship", 14), ("reject", 10), ("adjust", 12), ("read", 10))
#: Units of one receipt (``adjust``), drawn uniformly from this range.
RECEIPT_UNITS = (1, 6)


@dataclass
class ThreadLog:
    """What one client thread was told: acknowledged outcomes only."""

    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    #: order id -> line id -> (node, sku, qty, state as acknowledged)
    orders: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    receipts: Counter[str] = field(default_factory=Counter)  # "node|sku" -> units
    rejected_orders: set[str] = field(default_factory=set)
    replays: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # this thread's own CPU time (time.thread_time)


def setup(url: str) -> None:
    """A fresh ledger schema with the storm's nodes and hot stock."""
    from serving.ledger import InitialStock, Ledger, NodeRecord, create_schema, make_engine

    engine = make_engine(url)
    create_schema(engine)
    ledger = Ledger(engine)
    ledger.upsert_nodes(
        [
            NodeRecord(n, "dc" if n.startswith("dc") else "store", 0.0, float(i))
            for i, n in enumerate(NODES)
        ]
    )
    ledger.load_stock(
        [InitialStock(n, s, INITIAL_ON_HAND) for n in NODES for s in HOT_SKUS],
        event_time=datetime.now(UTC) - timedelta(hours=1),
    )
    engine.dispose()


def _thread(
    ledger: Any,
    tag: str,
    seconds: float,
    max_ops: int,
    seed: int,
    mix: tuple[tuple[str, int], ...] = MIX,
    receipt_units: tuple[int, int] = RECEIPT_UNITS,
) -> ThreadLog:
    from serving.ledger import InventoryEvent

    rng = random.Random(seed)
    log = ThreadLog()
    cpu0 = time.thread_time()
    kinds, weights = zip(*mix, strict=True)
    deadline = time.monotonic() + seconds
    n = 0
    # orders with a reserved line, in the order they were placed (kept as each op changes
    # them: rebuilding it from the history every op cost the client more than the ledger)
    still_open: dict[str, None] = {}
    while n < max_ops and time.monotonic() < deadline:
        n += 1
        op = rng.choices(kinds, weights)[0]
        open_orders = list(still_open)
        t0 = time.perf_counter()
        try:
            if op == "place" or (op in ("cancel", "ship", "reject", "read") and not open_orders):
                op = "place"
                oid = f"{tag}-{n}"
                lines = {
                    f"l{i}": [
                        rng.choice(NODES),
                        rng.choice(HOT_SKUS),
                        rng.randint(1, 3),
                        "reserved",
                    ]
                    for i in range(rng.randint(1, 3))
                }
                key = f"k-{oid}" if rng.random() < 0.3 else None
                args = [(lid, v[0], v[1], v[2]) for lid, v in lines.items()]
                res = ledger.reserve_order(
                    oid, args, idempotency_key=key, request_hash=oid, plan={}
                )
                log.orders[oid] = lines
                still_open[oid] = None
                if key is not None:  # a client retry after a lost answer: same outcome, no effect
                    again = ledger.reserve_order(
                        oid, args, idempotency_key=key, request_hash=oid, plan={}
                    )
                    assert again.replayed and again.order_id == res.order_id
                    log.replays += 1
            elif op in ("cancel", "ship"):
                oid = rng.choice(open_orders)
                (ledger.cancel_order if op == "cancel" else ledger.ship_order)(oid)
                for v in log.orders[oid].values():
                    if v[3] == "reserved":
                        v[3] = "released" if op == "cancel" else "shipped"
                del still_open[oid]
            elif op == "reject":
                oid = rng.choice(open_orders)
                lid, v = rng.choice(
                    [(k, v) for k, v in log.orders[oid].items() if v[3] == "reserved"]
                )
                ledger.reject_allocation(oid, v[0], [lid], "damaged")
                v[3] = "rejected"
                log.rejected_orders.add(oid)
                if all(w[3] != "reserved" for w in log.orders[oid].values()):
                    del still_open[oid]
            elif op == "adjust":
                node, sku = rng.choice(NODES), rng.choice(HOT_SKUS)
                qty = rng.randint(*receipt_units)
                event = InventoryEvent(
                    f"rcv-{uuid.uuid4().hex}", datetime.now(UTC), node, sku, "delta", qty
                )
                [result] = ledger.adjust([event])
                assert result.outcome == "applied", result
                log.receipts[f"{node}|{sku}"] += qty
            else:
                oid = rng.choice(list(log.orders))
                ledger.get_order(oid)
            log.ops[op] += 1
        except Exception as exc:  # counted; unexpected kinds fail the storm
            log.ops[op] += 1
            log.errors[type(exc).__name__] += 1
        log.latencies_ms.append((time.perf_counter() - t0) * 1000)
    log.cpu_s = time.thread_time() - cpu0
    return log


def _process(
    url: str,
    index: int,
    threads: int,
    seconds: float,
    max_ops: int,
    seed: int,
    mix: tuple[tuple[str, int], ...] = MIX,
    receipt_units: tuple[int, int] = RECEIPT_UNITS,
) -> dict[str, Any]:
    from serving.ledger import Ledger, make_engine

    engine = make_engine(url, pool_size=threads, max_overflow=2)
    backends = _server_pids(engine)
    ledger = Ledger(engine)
    logs: list[ThreadLog] = [ThreadLog() for _ in range(threads)]

    def run(i: int) -> None:
        logs[i] = _thread(
            ledger,
            f"p{index}t{i}",
            seconds,
            max_ops,
            seed * 1000 + index * 100 + i,
            mix,
            receipt_units,
        )

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    server_cpu = sum(_pid_cpu_s(pid) for pid in backends)
    engine.dispose()
    return merge(
        [
            {
                "ops": lg.ops,
                "errors": lg.errors,
                "orders": lg.orders,
                "receipts": lg.receipts,
                "rejected_orders": list(lg.rejected_orders),
                "replays": lg.replays,
                "latencies_ms": lg.latencies_ms,
                "client_cpu_s": lg.cpu_s,
                "server_cpu_s": 0.0,
            }
            for lg in logs
        ]
        + [{**merge([]), "server_cpu_s": server_cpu}]
    )


def _server_pids(engine: Any) -> list[int]:
    """PostgreSQL backend pids of the engine's connections (each new one records its own), so
    the server CPU the storm's own sessions used can be read from ``/proc`` at the end: the
    machine is shared, and the postmaster's totals include every other client."""
    from sqlalchemy import event

    pids: list[int] = []
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _record(dbapi_connection: Any, _record: Any) -> None:
            cur = dbapi_connection.cursor()
            cur.execute("SELECT pg_backend_pid()")
            pids.append(int(cur.fetchone()[0]))
            cur.close()

    return pids


def _pid_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a local process (0 when it is gone or not readable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One history from the histories of several threads or processes."""
    merged: dict[str, Any] = {
        "ops": Counter(),
        "errors": Counter(),
        "orders": {},
        "receipts": Counter(),
        "rejected_orders": [],
        "replays": 0,
        "latencies_ms": [],
        "client_cpu_s": 0.0,
        "server_cpu_s": 0.0,
    }
    for p in parts:
        for key in ("ops", "errors", "orders", "receipts"):
            merged[key].update(p[key])
        merged["rejected_orders"].extend(p["rejected_orders"])
        merged["replays"] += p["replays"]
        merged["latencies_ms"].extend(p["latencies_ms"])
        merged["client_cpu_s"] += p.get("client_cpu_s", 0.0)
        merged["server_cpu_s"] += p.get("server_cpu_s", 0.0)
    return merged


def verify(url: str, history: dict[str, Any]) -> dict[str, Any]:
    """Check the ledger against itself and against the acknowledged history."""
    from sqlalchemy import select

    from serving.ledger import Ledger, OrderNotFound, make_engine
    from serving.ledger.tables import movements

    engine = make_engine(url)
    ledger = Ledger(engine)
    problems = list(ledger.invariant_violations())
    if not ledger.check().clean:
        problems.append("movement log does not replay to the stock rows")
    expect_reserved: Counter[tuple[str, str]] = Counter()
    expect_shipped: Counter[tuple[str, str]] = Counter()
    lost = 0
    for oid, lines in history["orders"].items():
        try:
            view = ledger.get_order(oid)
        except OrderNotFound:
            lost += 1
            problems.append(f"acknowledged order {oid} is not readable")
            continue
        actual = {a.line_id: a.status for a in view.allocations}
        for lid, (node, sku, qty, state) in lines.items():
            if actual.get(lid) != state:
                problems.append(
                    f"{oid}/{lid}: ledger says {actual.get(lid)}, client was told {state}"
                )
            if state == "reserved":
                expect_reserved[(node, sku)] += qty
            elif state == "shipped":
                expect_shipped[(node, sku)] += qty
    rejected = set(history["rejected_orders"])
    write_off: Counter[tuple[str, str]] = Counter()
    with engine.connect() as conn:
        for m in conn.execute(select(movements).where(movements.c.kind == "reject_adjust")):
            if m.ref not in rejected:
                problems.append(f"write-off for {m.ref} that no client rejected")
            write_off[(m.node_id, m.sku)] += -int(m.d_on_hand)
    oversold = 0
    for lv in ledger.availability():
        key = (lv.node_id, lv.sku)
        received = INITIAL_ON_HAND + history["receipts"].get(f"{lv.node_id}|{lv.sku}", 0)
        expected_on_hand = received - expect_shipped[key] - write_off[key]
        if (lv.reserved, lv.shipped, lv.on_hand) != (
            expect_reserved[key],
            expect_shipped[key],
            expected_on_hand,
        ):
            problems.append(
                f"{key}: reserved/shipped/on_hand {lv.reserved}/{lv.shipped}/{lv.on_hand}, "
                f"history implies {expect_reserved[key]}/{expect_shipped[key]}/{expected_on_hand}"
            )
        oversold += max(0, lv.reserved + lv.shipped + write_off[key] - received)
    engine.dispose()
    unexpected = {k: v for k, v in history["errors"].items() if k not in EXPECTED_ERRORS}
    return {
        "problems": problems[:20],
        "problem_count": len(problems),
        "lost_orders": lost,
        "oversold_units": oversold,
        "unexpected_errors": unexpected,
    }


def run_storm(
    url: str,
    *,
    processes: int,
    threads: int,
    seconds: float,
    max_ops: int,
    seed: int = 1,
    mix: tuple[tuple[str, int], ...] = MIX,
    receipt_units: tuple[int, int] = RECEIPT_UNITS,
) -> dict[str, Any]:
    """Set up, storm, verify; returns counts, throughput and what was checked. ``mix`` weighs
    the operations (e.g. mostly placements for a reservation-throughput run) and
    ``receipt_units`` sizes each receipt (``adjust``: a delta through the ledger's stock path)."""
    setup(url)
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(processes) as pool:
        parts = pool.starmap(
            _process,
            [
                (url, i, threads, seconds, max_ops, seed, mix, receipt_units)
                for i in range(processes)
            ],
        )
    elapsed = time.perf_counter() - t0
    history = merge(parts)
    latencies: list[float] = history["latencies_ms"]
    checked = verify(url, history)
    latencies.sort()
    total = sum(history["ops"].values())
    acknowledged = len(history["orders"])
    return {
        "backend": url.split(":", 1)[0].split("+")[0],
        "processes": processes,
        "threads": threads,
        "operations": total,
        "by_kind": dict(history["ops"]),
        "expected_errors": {k: v for k, v in history["errors"].items() if k in EXPECTED_ERRORS},
        "idempotent_replays": history["replays"],
        "orders_acknowledged": acknowledged,
        # placements acknowledged per second of each client's run (process start-up excluded)
        "reservations_per_second": round(acknowledged / seconds, 1),
        # every placement decided (reserved, or refused for want of stock) per second
        "placements_per_second": round(history["ops"].get("place", 0) / seconds, 1),
        "seconds": round(elapsed, 1),
        "ops_per_second": round(total / elapsed, 1) if elapsed else 0.0,
        # CPU the client threads and (PostgreSQL) their server sessions spent per operation:
        # the machine is shared, so this says what the code costs where rates cannot
        "client_cpu_ms_per_op": round(1000 * history["client_cpu_s"] / total, 3) if total else None,
        "server_cpu_ms_per_op": round(1000 * history["server_cpu_s"] / total, 3) if total else None,
        "p50_ms": round(latencies[len(latencies) // 2], 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 2) if latencies else None,
        **checked,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-ops", type=int, default=10**9, help="per thread")
    args = ap.parse_args()
    result = run_storm(
        args.url,
        processes=args.processes,
        threads=args.threads,
        seconds=args.seconds,
        max_ops=args.max_ops,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
