"""HTTP load on the real server with ``wrk`` over loopback: ``POST /v1/route`` and
``POST /v1/orders`` at fixed rates and at saturation, with 1 and 2 uvicorn workers.

``wrk`` comes from the Debian packages (installed here with ``apt-get`` when missing). A Lua
script writes each request's body (a fresh order id, an ``Idempotency-Key`` for orders, SKUs
stocked widely), counts answers by status and prints the latency percentiles as JSON.
Fixed rates pace each connection with wrk's ``delay()`` (a paced closed loop, so past
saturation the achieved rate falls short of the target rather than latency growing without
bound; the achieved rate is reported). After the orders runs the ledger is checked:
invariants hold and no row is oversold.

    python -m benchmarks.bench_http [--quick] [--home .routecast]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_startup import start_server, stop_server
from benchmarks.machine import stamp

LUA = r"""
local skus = {%(skus)s}
local path = "%(path)s"
local key = "%(key)s"
local pause_ms = %(pause_ms)s
local counter = 0
local threads = {}
statuses = {}  -- global: done() reads each thread's copy with thread:get

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function delay()
  return pause_ms
end

request = function()
  counter = counter + 1
  local a = skus[(counter %% #skus) + 1]
  local b = skus[((counter * 7 + id) %% #skus) + 1]
  local oid = "W" .. id .. "-" .. counter .. "-" .. math.random(1, 1000000000)
  local lines = '{"line_id":"1","sku":"' .. a .. '","qty":1}'
  if counter %% 2 == 0 and a ~= b then
    lines = lines .. ',{"line_id":"2","sku":"' .. b .. '","qty":1}'
  end
  local body = '{"order_id":"' .. oid .. '","destination":{"postal_code":"'
    .. ({"10001","94103","60601","73301","33101"})[(counter %% 5) + 1] .. '"},"lines":[' .. lines .. ']}'
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}
  if path == "/v1/orders" then headers["Idempotency-Key"] = oid end
  return wrk.format("POST", path, headers, body)
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  local codes = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, n in pairs(s) do codes[code] = (codes[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(codes) do table.insert(parts, '"' .. code .. '":' .. n) end
  io.write(string.format(
    'RESULT {"requests":%%d,"duration_us":%%d,"connect_errors":%%d,"read_errors":%%d,' ..
    '"write_errors":%%d,"timeouts":%%d,"non_2xx":%%d,"p50_us":%%d,"p99_us":%%d,"p999_us":%%d,' ..
    '"max_us":%%d,"mean_us":%%d,"statuses":{%%s}}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, table.concat(parts, ",")))
end
"""


def ensure_wrk() -> str:
    """``wrk`` from the Debian packages, installed here when missing (as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env)
        subprocess.run(install, check=True, capture_output=True, env=env)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def wrk_run(
    url: str,
    path: str,
    key: str,
    skus: list[str],
    *,
    connections: int,
    seconds: float,
    rate: float | None = None,
) -> dict[str, Any]:
    threads = min(2, connections)
    pause_ms = 0 if rate is None else max(0, int(1000 * connections / rate))
    script = LUA % {
        "skus": ",".join(f'"{s}"' for s in skus),
        "path": path,
        "key": key,
        "pause_ms": pause_ms,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(
            [
                ensure_wrk(),
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                fh.name,
                url,
            ],
            capture_output=True,
            text=True,
        )
    finally:
        Path(fh.name).unlink(missing_ok=True)
    if out.returncode != 0 or "RESULT " not in out.stdout:
        raise RuntimeError(
            f"wrk failed ({out.returncode}): {out.stderr[-2000:]}{out.stdout[-2000:]}"
        )
    return _parsed(out.stdout, path, connections, rate)


def _parsed(out: str, path: str, connections: int, rate: float | None) -> dict[str, Any]:
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    seconds_run = raw["duration_us"] / 1e6
    ok = sum(n for code, n in raw["statuses"].items() if code.startswith("2"))
    return {
        "path": path,
        "connections": connections,
        "target_rps": rate,
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds_run, 1),
        "ok_rps": round(ok / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "p999_ms": round(raw["p999_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "statuses": raw["statuses"],
        "socket_errors": raw["connect_errors"]
        + raw["read_errors"]
        + raw["write_errors"]
        + raw["timeouts"],
    }


def ledger_check(database_url: str) -> dict[str, Any]:
    from serving.ledger import Ledger, make_engine

    engine = make_engine(database_url)
    ledger = Ledger(engine)
    violations = ledger.invariant_violations()
    oversold = sum(max(0, -lv.available) for lv in ledger.availability())
    clean = ledger.check().clean
    engine.dispose()
    return {
        "invariant_violations": violations[:10],
        "oversold_units": oversold,
        "log_replays": clean,
    }


#: Hot SKUs the load is spread over (the most widely stocked of the world).
HOT_SKUS = 40
#: Units added to every stock row of a hot SKU before the load, so a saturating orders run
#: measures placements rather than refusals once the world's own stock is gone.
TOP_UP = 100_000
#: Daily capacity given to capacity-limited nodes: still counted in every reservation (the
#: real path), never reached in a run.
CAPACITY = 1_000_000


def prepare_ledger(home: Path, database_url: str) -> list[str]:
    """Seed the ledger from the home's tables as the server would, top up the hot SKUs and
    lift daily capacities; returns the hot SKUs (most nodes in stock first)."""
    from collections import Counter
    from dataclasses import replace
    from datetime import UTC, datetime

    from serving.ledger import InventoryEvent, Ledger, create_schema, make_engine
    from serving.ledger_seed import seed_ledger

    engine = make_engine(database_url)
    try:
        create_schema(engine)
        ledger = Ledger(engine)
        seed_ledger(ledger, home / "data" / "raw")
        spread = Counter(lv.sku for lv in ledger.availability() if lv.available > 0)
        hot = [sku for sku, _ in spread.most_common(HOT_SKUS)]
        now = datetime.now(UTC)
        ledger.adjust(
            [
                InventoryEvent(
                    f"bench-top-up-{lv.node_id}-{lv.sku}",
                    now,
                    lv.node_id,
                    lv.sku,
                    "delta",
                    TOP_UP,
                    "benchmark",
                )
                for lv in ledger.availability(hot)
                if lv.available > 0
            ]
        )
        ledger.upsert_nodes(
            [replace(n, daily_capacity=CAPACITY) for n in ledger.nodes() if n.daily_capacity > 0]
        )
    finally:
        engine.dispose()
    return hot


def _measured(
    server: Any, path: str, skus: list[str], *, connections: int, seconds: float, rate: float | None
) -> dict[str, Any]:
    """One wrk run plus what the server spent on it: CPU ms per request and cores busy
    (near the core count: CPU-bound)."""
    from benchmarks.bench_startup import cpu_seconds

    before = cpu_seconds(server.process.pid)
    r = wrk_run(
        server.url, path, server.key, skus, connections=connections, seconds=seconds, rate=rate
    )
    used = cpu_seconds(server.process.pid) - before
    r["server_cpu_ms_per_request"] = round(1000 * used / max(1, r["requests"]), 2)
    r["server_cores_busy"] = round(used / seconds, 2)
    return r


#: A paced connection's pause between requests at a fixed rate, at least: the pause then
#: dominates each connection's cycle while latency stays well under it, so the achieved
#: rate is near the target until the server saturates.
PACE_MS = 64


def paced_connections(rate: float) -> int:
    """Connections for a fixed-rate run: enough that each pauses ``PACE_MS`` or more."""
    return max(8, math.ceil(rate * PACE_MS / 1000))


PLAN: dict[str, tuple[int, ...]] = {"/v1/route": (300, 1000), "/v1/orders": (100, 300)}


def run(home: Path, quick: bool, workers_list: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    seconds = 8 if quick else 20
    warmup = 3 if quick else 5
    runs: list[dict[str, Any]] = []
    checks: dict[str, Any] = {}
    for workers in workers_list:
        with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
            url = f"sqlite:///{tmp}/ledger.db"
            skus = prepare_ledger(home, url)
            server = start_server(home, url, workers=workers)
            try:
                for path, rates in PLAN.items():
                    # discarded: first requests load what a worker loads lazily (the live
                    # feature feed's Feast client, the first orders' code paths)
                    wrk_run(server.url, path, server.key, skus, connections=8, seconds=warmup)
                    for rate in rates[:1] if quick else rates:
                        conns = paced_connections(rate)
                        r = _measured(
                            server, path, skus, connections=conns, seconds=seconds, rate=rate
                        )
                        runs.append({"workers": workers, "load": "fixed", **r})
                        print(
                            f"http {workers}w {path} @{rate}: {r['rps']} rps p99 {r['p99_ms']} ms "
                            f"cpu {r['server_cpu_ms_per_request']} ms/req",
                            flush=True,
                        )
                    r = _measured(server, path, skus, connections=32, seconds=seconds, rate=None)
                    runs.append({"workers": workers, "load": "saturation", **r})
                    print(
                        f"http {workers}w {path} sat: {r['rps']} rps p99 {r['p99_ms']} ms "
                        f"cpu {r['server_cpu_ms_per_request']} ms/req",
                        flush=True,
                    )
            finally:
                stop_server(server)
            checks[f"{workers}_workers"] = ledger_check(url)
    return {
        **stamp(),
        "quick": quick,
        "seconds_per_run": seconds,
        "hot_skus": len(skus),
        "what": "wrk over loopback, Lua-written bodies (1-2 lines on the world's most widely "
        "stocked SKUs, new order id each, Idempotency-Key for orders); before the server "
        f"starts its ledger is seeded, each hot SKU's stock rows topped up by {TOP_UP} units "
        f"and daily capacities set to {CAPACITY} (still counted); {warmup} s of discarded "
        "warm-up per path; server CPU from /proc (all workers)",
        "runs": runs,
        "ledger_after_orders": checks,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    args = ap.parse_args()
    print(json.dumps(run(args.home.resolve(), args.quick), indent=2))


if __name__ == "__main__":
    main()
