"""``make reliability``: storms, idempotency races, faults and fuzzing; writes docs/RELIABILITY.md.

Every figure in the report comes from this run and says how to reproduce it. The CI form of
the same checks (small sizes) runs inside ``make test`` (tests/benchmarks/test_reliability.py).

    python -m benchmarks.reliability            # full form
    python -m benchmarks.reliability --quick    # minutes, same checks, small sizes
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path("benchmarks/results/reliability.json")
REPORT = Path("docs/RELIABILITY.md")
SHARED_PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


@contextmanager
def pg_database(server: str = SHARED_PG) -> Iterator[str]:
    """A uniquely named database on the shared server, dropped afterwards."""
    import psycopg

    name = f"rc_rel_{uuid.uuid4().hex[:10]}"
    admin = server.replace("+psycopg", "") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="rc-rel-") as tmp:
        yield f"sqlite:///{tmp}/ledger.db"


def backends() -> list[tuple[str, Callable[[], Any]]]:
    return [("sqlite", sqlite_file), ("postgresql", pg_database)]


def demo_home(path: Path) -> Path:
    if not (path / "mlflow.db").exists():
        log(f"building the demo world in {path} (once)")
        subprocess.run(
            [sys.executable, "-m", "serving.cli", "demo"],
            check=True,
            env={**__import__("os").environ, "ROUTECAST_HOME": str(path)},
        )
    return path


# -- sections ---------------------------------------------------------------------------------


def ledger_storms(size: dict[str, Any]) -> list[dict[str, Any]]:
    """Both backends at once: each storm waits mostly on its database (SQLite's file lock,
    PostgreSQL's row locks and round trips), so side by side they take the time of one."""
    from concurrent.futures import ThreadPoolExecutor

    from benchmarks.storm import run_storm

    def one(name: str, db: Callable[[], Any]) -> dict[str, Any]:
        ops = size["ops_per_thread"]
        per_thread = ops[name] if isinstance(ops, dict) else ops
        with db() as url:
            log(
                f"ledger storm on {name}: {size['processes']} processes x {size['threads']} "
                f"threads x up to {per_thread} ops, {size['seconds']} s cap"
            )
            res = run_storm(
                url,
                processes=size["processes"],
                threads=size["threads"],
                seconds=size["seconds"],
                max_ops=per_thread,
            )
        log(
            f"  {name}: {res['operations']} ops, {res['ops_per_second']} ops/s, "
            f"problems {res['problem_count']}, oversold {res['oversold_units']}, lost {res['lost_orders']}"
        )
        return res

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(one, name, db) for name, db in backends()]
        return [f.result() for f in futures]


def http_storms(home: Path, size: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.http_storm import (
        kill_a_worker,
        private_postgres,
        serve,
        settle_and_verify,
        storm,
    )

    out = []
    for name, db in backends():
        with db() as url, serve(home, url, workers=2) as server:
            log(f"HTTP storm on {name} with a worker SIGKILLed mid-storm")
            run = storm(
                server,
                clients=size["clients"],
                seconds=size["seconds"],
                fault=kill_a_worker(server),
            )
            res = {
                "backend": name,
                "scenario": "SIGKILL a worker mid-storm",
                **settle_and_verify(server, url, run),
            }
            log(
                f"  {res['operations']} ops, 5xx {res['server_errors_5xx_not_503']}, {res['fault']}"
            )
            out.append(res)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="rc-pg-") as tmp,
            private_postgres(Path(tmp) / "pg") as pg,
        ):
            if pg is None:
                out.append(
                    {
                        "backend": "postgresql",
                        "scenario": "PostgreSQL restart",
                        "skipped": "no initdb/pg_ctl",
                    }
                )
            else:
                url, restart = pg
                with serve(home, url, workers=2) as server:
                    log("HTTP storm on a private PostgreSQL, restarted mid-storm")
                    run = storm(
                        server,
                        clients=size["clients"],
                        seconds=size["seconds"],
                        fault=restart,
                        fault_at=0.4,
                    )
                    res = {
                        "backend": "postgresql",
                        "scenario": "PostgreSQL fast restart under load",
                        **settle_and_verify(server, url, run),
                    }
                    log(
                        f"  {res['operations']} ops, 5xx {res['server_errors_5xx_not_503']}, 503 {res['answers_503']}"
                    )
                    out.append(res)
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:  # no private server
        out.append(
            {
                "backend": "postgresql",
                "scenario": "PostgreSQL restart",
                "skipped": f"private PostgreSQL could not run: {exc}"[:200],
            }
        )
    return out


@contextmanager
def app_client(
    home: Path, url: str, *, make_key: bool = True, **settings: Any
) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import Settings

    app = create_app(Settings(home=home, database_url=url, **settings), background=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        runtime = app.state.runtime
        headers: dict[str, str] = {}
        if make_key:
            key = runtime.keys.create({"route", "orders", "inventory", "admin"}, "reliability")
            headers = {"Authorization": f"Bearer {key}"}
            client.headers.update(headers)
        yield client, runtime, headers


def fuzzing(home: Path, examples: int) -> list[dict[str, Any]]:
    from benchmarks.fuzz import openapi_conformance, run_catalogue, schema_fuzz, sender

    out = []
    for name, db in backends():
        with db() as url, app_client(home, url) as (client, runtime, headers):
            log(f"schemathesis on {name}: {examples} examples per operation and mode")
            fz = schema_fuzz(client.app, headers, examples=examples).as_dict()
            log(
                f"  {fz['requests']} requests, 5xx {fz['server_errors']}, mismatches {fz['schema_mismatches']}"
            )

            conforms = openapi_conformance(client.app)
            cat = run_catalogue(sender(client), runtime.nodes[0].node_id, conforms)
            log(
                f"  catalogue: {cat['inputs']} bad inputs, {len(cat['failures'])} not answered as "
                f"required, {len(cat['schema_mismatches'])} not as the OpenAPI document says"
            )
            out.append({"backend": name, "schemathesis": fz, "catalogue": cat})
    return out


def idempotency_races(home: Path, racers: int) -> list[dict[str, Any]]:
    """The same key and body sent concurrently: one reservation, every answer the same order."""
    from concurrent.futures import ThreadPoolExecutor

    out = []
    for name, db in backends():
        with db() as url, app_client(home, url) as (client, runtime, _):
            sku = client.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
            before = sum(n["reserved"] for n in client.get(f"/v1/inventory/{sku}").json()["nodes"])
            body = {
                "order_id": f"RACE-{uuid.uuid4().hex[:8]}",
                "destination": {"country": "US", "postal_code": "10001"},
                "lines": [{"line_id": "1", "sku": sku, "qty": 1}],
                "mode": "cost",
            }

            def send(_: int, body: dict[str, Any] = body, client: Any = client) -> int:
                return int(
                    client.post(
                        "/v1/orders",
                        json=body,
                        headers={"Idempotency-Key": "race-" + body["order_id"]},
                    ).status_code
                )

            with ThreadPoolExecutor(max_workers=racers) as pool:
                codes = list(pool.map(send, range(racers)))
            final = send(0)
            after = sum(n["reserved"] for n in client.get(f"/v1/inventory/{sku}").json()["nodes"])
            out.append(
                {
                    "backend": name,
                    "racers": racers,
                    "answers": {str(c): codes.count(c) for c in sorted(set(codes))},
                    "retry_after_race": final,
                    "units_reserved": after - before,
                    "ok": after - before == 1 and final == 201 and set(codes) <= {201, 409},
                    "violations": runtime.ledger.invariant_violations(),
                }
            )
            log(f"  same-key race on {name}: {out[-1]['answers']}, reserved {after - before}")
    return out


def component_faults(home: Path) -> list[dict[str, Any]]:
    """Feature store and registry unavailable (at start and while running), read-only SQLite."""
    out: list[dict[str, Any]] = []
    order = {
        "order_id": "F-1",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [{"line_id": "1", "sku": "", "qty": 1}],
    }
    dead_redis = {"online_store": "redis", "redis_url": "redis://127.0.0.1:9/0"}
    # A registry whose database is gone (an HTTP registry that refuses connections behaves the
    # same once MLflow's own retries give up, which takes minutes by default).
    dead_registry = {"mlflow_tracking_uri": "sqlite:////nonexistent-registry/mlflow.db"}
    for what, broken in (("feature store", dead_redis), ("model registry", dead_registry)):
        with sqlite_file() as url, app_client(home, url, **broken) as (client, runtime, _):
            sku = client.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
            order["lines"][0]["sku"] = sku
            ready = client.get("/readyz")
            routed = client.post("/v1/route", json=order)
            ok = (
                ready.status_code == 200
                and ready.json()["reasons"]
                and routed.status_code == 200
                and routed.json()["degraded"]
            )
            out.append(
                {
                    "fault": f"{what} unavailable at start",
                    "expected": "starts, /readyz degraded with the reason, routes in cost mode",
                    "observed": f"readyz {ready.status_code} {ready.json()['status']}; route {routed.status_code} degraded={routed.json().get('degraded')}",
                    "ok": bool(ok),
                }
            )
    with sqlite_file() as url, app_client(home, url) as (client, runtime, _):
        sku = client.get("/v1/skus", params={"limit": 1}).json()[0]["sku"]
        order["lines"][0]["sku"] = sku
        good_settings, good_store = runtime.settings, runtime._store
        runtime.settings = good_settings.model_copy(update=dead_redis)
        runtime._store = None
        runtime.refresh_features()
        during = client.get("/readyz").json()
        routed = client.post("/v1/route", json=order)
        runtime.settings, runtime._store = good_settings, good_store
        runtime.refresh_features()
        after = client.get("/readyz").json()
        out.append(
            {
                "fault": "feature store lost while running",
                "expected": "last snapshot keeps serving, /readyz names the failed refresh, recovers",
                "observed": f"during: {during['status']} ({'; '.join(during['reasons'])[:120]}); route {routed.status_code}; after: {after['status']}",
                "ok": during["status"] == "degraded"
                and routed.status_code == 200
                and after["status"] == "ready",
            }
        )
        good_uri = runtime.models.tracking_uri
        runtime.models.tracking_uri = dead_registry["mlflow_tracking_uri"]
        runtime.refresh_models()
        kept = client.post("/v1/route", json=order)
        ready = client.get("/readyz").json()
        runtime.models.tracking_uri = good_uri
        out.append(
            {
                "fault": "model registry lost while running",
                "expected": "loaded champion keeps serving predictive answers, /readyz names it",
                "observed": f"route {kept.status_code} mode={kept.json().get('mode')} "
                f"degraded={kept.json().get('degraded')}; readyz {ready['status']}",
                "ok": kept.status_code == 200
                and kept.json().get("mode") == "predictive"
                and ready["status"] == "degraded",
            }
        )
    out.append(read_only_sqlite(home, order))
    out.append(
        {
            "fault": "disk full",
            "expected": "503 problem with Retry-After (same path as the read-only file: SQLite OperationalError)",
            "observed": "not injected: filling a disk on a shared machine is not safe; the mapping is the read-only case's",
            "ok": None,
        }
    )
    return out


def read_only_sqlite(home: Path, order: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="rc-ro-") as tmp:
        path = Path(tmp) / "ledger.db"
        with app_client(home, f"sqlite:///{path}") as (client, _, headers):
            pass
        ro = f"sqlite:///file:{path}?mode=ro&uri=true"
        try:
            with app_client(home, ro, make_key=False) as (client, _, _):
                client.headers.update(headers)  # the key made above lives in the file
                placed = client.post("/v1/orders", json={**order, "order_id": "RO-1"})
                read = client.get("/v1/skus")
                ok = (
                    placed.status_code == 503
                    and "retry-after" in placed.headers
                    and read.status_code == 200
                )
                observed = f"place {placed.status_code} Retry-After={placed.headers.get('retry-after')}; read {read.status_code}"
        except Exception as exc:  # start-up itself refused: also a clean outcome to report
            ok, observed = False, f"start-up failed: {type(exc).__name__}: {exc}"[:200]
    return {
        "fault": "read-only SQLite file",
        "expected": "writes answer 503 with Retry-After, reads keep working",
        "observed": observed,
        "ok": ok,
    }


# -- the report -----------------------------------------------------------------------------------


def write_report(results: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    REPORT.write_text(render(results))
    log(f"wrote {REPORT} and {RESULTS}")


def render(r: dict[str, Any]) -> str:
    storms = r.get("ledger_storms", [])
    https = r.get("http_storms", [])
    fuzz = r.get("fuzzing", [])
    races = r.get("idempotency_races", [])
    faults = r.get("component_faults", [])
    total_storm = sum(s["operations"] for s in storms) + sum(h.get("operations", 0) for h in https)
    fuzzed = sum(f["schemathesis"]["requests"] for f in fuzz)
    bad = sum(f["catalogue"]["inputs"] for f in fuzz)
    oversold = sum(s["oversold_units"] for s in storms) + sum(
        h.get("oversold_units", 0) for h in https
    )
    lost = sum(s["lost_orders"] for s in storms) + sum(h.get("orders_unreadable", 0) for h in https)
    five = sum(f["schemathesis"]["server_errors"] for f in fuzz) + sum(
        h.get("server_errors_5xx_not_503", 0) for h in https
    )
    mism = sum(f["schemathesis"]["schema_mismatches"] for f in fuzz)
    half = sum(s["problem_count"] for s in storms) + sum(
        len(h.get("invariant_violations", [])) for h in https
    )
    cat_mism = sum(len(f["catalogue"].get("schema_mismatches", [])) for f in fuzz)
    cat_fail = sum(len(f["catalogue"]["failures"]) for f in fuzz)
    nfaults = len(https) + len(faults)
    cmd = r["command"]
    load = r.get("load_average", {})
    size = r.get("size", {})
    per_thread = size.get("ops_per_thread")
    if isinstance(per_thread, dict):
        per_thread = " / ".join(f"{v:,} ({k})" for k, v in per_thread.items())
    sizes = (
        f"ledger storms {size.get('processes')} processes × {size.get('threads')} threads × up to "
        f"{per_thread} operations per thread, {size.get('seconds')} s cap; HTTP storms "
        f"{size.get('clients')} clients × {size.get('http_seconds')} s per scenario; fuzzing "
        f"{size.get('examples')} examples per operation and mode; {size.get('racers')} same-key racers"
    )
    by_backend = ", ".join(f"{s['backend']} {s['operations']:,}" for s in storms) + "".join(
        f", HTTP {h['backend']} {h.get('operations', 0):,}" for h in https
    )
    lines = [
        "# Reliability",
        "",
        f"Measured by `{cmd}` on {r['finished'][:16]} UTC ({r['machine']}), in {r['minutes']} min"
        " of wall time (the ledger storms run beside the other sections).",
        f"Machine load average (1/5/15 min) {load.get('start', '?')} at the start, {load.get('end', '?')}"
        " at the end: the machine was shared, so times and rates are lower bounds, counts are exact.",
        f"Sizes: {sizes}.",
        "Every figure below comes from that run; `benchmarks/results/reliability.json` holds all of it.",
        "The CI form (same checks, small sizes) runs in `make test`: `tests/benchmarks/test_reliability.py`.",
        *(
            [
                f"CI form: {ci['seconds']} s for its {ci['tests']} tests' own run time "
                f"(`{ci['command']}`, {ci['when']}, load average ≈ {ci['load']}; "
                f"the shared demo world build, {ci['demo_build_seconds']} s, is not counted)."
            ]
            if (ci := r.get("ci_form"))
            else []
        ),
        "",
        "| measure | result | reproduce |",
        "|---|---|---|",
        f"| storm operations (ledger + HTTP, SQLite + PostgreSQL) | {total_storm:,} ({by_backend}) | `{cmd}` (sections ledger storms, HTTP storms) |",
        f"| half-reserved or otherwise inconsistent (ledger invariants, movement-log replay, each acknowledged line's state, per node×SKU reserved/shipped/on hand against the history) | {half} | storms: a half-reserved order (stock reserved without its allocation, or a line without its stock) shows here |",
        f"| faults injected | {nfaults} (survived as asserted: {sum(1 for h in https if not h.get('skipped') and not h['problems'] and not h['invariant_violations'] and h['server_errors_5xx_not_503'] == 0) + sum(1 for f in faults if f['ok'])}) | see Faults |",
        f"| fuzzed requests (schemathesis) | {fuzzed:,} | `{cmd}` (section fuzzing) |",
        f"| hand-made bad inputs tried | {bad} (not answered as 4xx naming the field: {cat_fail}) | `benchmarks/fuzz.py` catalogue |",
        f"| units oversold | {oversold} | storms: per node×SKU, shipped + reserved vs everything received |",
        f"| orders lost (acknowledged, then unreadable or in another state) | {lost} | storms: every acknowledged order read back |",
        f"| 5xx other than 503 | {five} | fuzzing + HTTP storms |",
        f"| answers not matching the OpenAPI document | {mism} of {fuzzed:,} fuzzed, {cat_mism} of {bad} hand-made | schemathesis checks (status, content type, headers, body schema); the same document judges every catalogue answer |",
        "",
        "## Ledger storms",
        "Several processes × threads call the ledger directly (each its own connection pool), a mix of",
        "placements (30 % replayed with their idempotency key), cancels, shipments, rejections, receipts",
        "and reads on 3 hot SKUs × 4 nodes. Afterwards the ledger invariants, the movement log replay,",
        "every acknowledged order line's state, and per node×SKU reserved/shipped/on hand against the",
        "acknowledged history (a lost update shows as a difference).",
        "",
        "| backend | processes × threads | operations | ops/s | p50 / p99 ms | refused (expected) | unexpected errors | history problems | oversold | lost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in storms:
        lines.append(
            f"| {s['backend']} | {s['processes']} × {s['threads']} | {s['operations']:,} | {s['ops_per_second']} | "
            f"{s['p50_ms']} / {s['p99_ms']} | {sum(s['expected_errors'].values())} | {sum(s['unexpected_errors'].values())} | "
            f"{s['problem_count']} | {s['oversold_units']} | {s['lost_orders']} |"
        )
    lines += [
        "",
        "## HTTP storms with faults",
        "uvicorn with 2 worker processes, clients placing (with `Idempotency-Key`), cancelling, shipping,",
        "reading and receiving stock on 3 hot SKUs. Requests whose connection died are retried with",
        "their key afterwards; then every acknowledged order is read back and the invariants checked.",
        "",
        "| backend | fault | operations | ops/s | answers | dropped connections | unknown outcomes → settled | 5xx (not 503) | 503 w/o Retry-After | oversold | unreadable | problems |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h in https:
        if h.get("skipped"):
            lines.append(
                f"| {h['backend']} | {h['scenario']} | skipped: {h['skipped']} |||||||||||"
            )
            continue
        lines.append(
            f"| {h['backend']} | {h['fault']} | {h['operations']:,} | {h['ops_per_second']} | {h['by_status']} | "
            f"{h['connections_dropped']} | {h['unknown_outcomes_retried']} → {h['retries_settled']} | "
            f"{h['server_errors_5xx_not_503']} | {h['503_without_retry_after']} | {h['oversold_units']} | "
            f"{h['orders_unreadable']} | {len(h['problems']) + len(h['invariant_violations'])} |"
        )
    lines += [
        "",
        "## Idempotency races",
        "",
        "| backend | concurrent same-key requests | answers | retry afterwards | units reserved |",
        "|---|---|---|---|---|",
    ]
    for x in races:
        lines.append(
            f"| {x['backend']} | {x['racers']} | {x['answers']} | {x['retry_after_race']} | {x['units_reserved']} |"
        )
    lines += [
        "",
        "Also covered: a retry after a lost answer replays (ledger storms); a claim whose request",
        "lost the database expires after `idempotency_claim_seconds` (15 s;",
        "`tests/serving/test_api_faults.py::test_claim_taken_before_the_outage_expires_quickly`);",
        "unknown outcomes after a SIGKILL settle on retry (HTTP storms).",
        "",
        "## Faults",
        "",
        "| fault | expected | observed | as expected |",
        "|---|---|---|---|",
    ]
    for h in https:
        if not h.get("skipped"):
            ok = (
                not h["problems"]
                and not h["invariant_violations"]
                and h["server_errors_5xx_not_503"] == 0
                and h["503_without_retry_after"] == 0
            )
            lines.append(
                f"| {h['fault']} ({h['backend']}) | no 500, clean 503 + Retry-After during the blip, unknown outcomes settle on retry, invariants hold | {h['by_status']}, {h['connections_dropped']} dropped | {'yes' if ok else 'NO'} |"
            )
    for f in faults:
        mark = "yes" if f["ok"] else ("not run" if f["ok"] is None else "NO")
        lines.append(f"| {f['fault']} | {f['expected']} | {f['observed']} | {mark} |")
    lines += [
        "",
        "## Fuzzing",
        "",
        "| backend | operations | requests | by status | 5xx | schema mismatches | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in fuzz:
        z = f["schemathesis"]
        lines.append(
            f"| {f['backend']} | {z['operations']} | {z['requests']:,} | {z['by_status']} | {z['server_errors']} | {z['schema_mismatches']} | {z['seconds']} |"
        )
    for f in fuzz:
        for ex in (
            f["schemathesis"]["examples"]
            + f["catalogue"]["failures"]
            + f["catalogue"].get("schema_mismatches", [])
        ):
            lines.append(f"- {f['backend']}: `{ex[:200]}`")
    lines += [f"- note: {n}" for n in r.get("notes", [])]
    lines += [
        "",
        "Catalogue of hand-made bad inputs (`benchmarks/fuzz.py::catalogue`): non-finite and huge",
        "numbers, far dates, NUL / control characters / lone surrogates, ids over the column sizes,",
        "oversized bodies and collections, unknown fields, wrong types, non-JSON, empty",
        "`Idempotency-Key`. Each must be a 4xx RFC 9457 problem naming the field, leaking nothing.",
        "",
        "## Access",
        "Every `/v1/` endpoint requires exactly one scope; no key, a wrong key, a revoked key and a",
        "key without the scope are refused on each (`tests/serving/test_api_edges.py::test_every_endpoint_checks_its_scope`).",
        "Keys are checked from the headers before the body is read. `GET /v1/models` needs a key.",
        "",
        "**Scoping decision.** A key's scopes say *what* it may do, not *whose* orders: any key with",
        "the `orders` scope may read, ship or cancel any order of this deployment. One routecast",
        "deployment serves one retailer; its channels (web, stores, marketplaces) are that retailer's",
        "own systems, each given its own key so it can be revoked alone. Per-channel or per-tenant",
        "order visibility would need an owner column on orders and a check on every order endpoint;",
        "it is not built, so do not share one deployment between mutually untrusted parties.",
        "",
    ]
    return "\n".join(lines)


def sections_names() -> tuple[str, ...]:
    return ("ledger_storms", "http_storms", "idempotency_races", "component_faults", "fuzzing")


def main() -> None:
    ap = argparse.ArgumentParser(
        description="storms, faults and fuzzing; writes docs/RELIABILITY.md"
    )
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    ap.add_argument("--only", nargs="*", default=None, help="sections to run")
    ap.add_argument("--storm-seconds", type=float, help="time cap of each ledger storm")
    ap.add_argument("--http-seconds", type=float, help="length of each HTTP storm")
    ap.add_argument("--examples", type=int, help="fuzz examples per operation and mode")
    args = ap.parse_args()
    size: dict[str, Any] = (
        {
            "processes": 2,
            "threads": 3,
            "seconds": 60,
            "ops_per_thread": 80,
            "clients": 4,
            "http_seconds": 15,
            "examples": 10,
            "racers": 8,
        }
        if args.quick
        else {
            "processes": 3,
            "threads": 6,
            "seconds": 1800,
            # 3 x 6 x (3,000 + 2,600) = 100,800 ledger operations; SQLite's are cheaper
            "ops_per_thread": {"sqlite": 3000, "postgresql": 2600},
            "clients": 12,
            "http_seconds": 90,
            "examples": 140,
            "racers": 24,
        }
    )
    for name, key in (
        ("storm_seconds", "seconds"),
        ("http_seconds", "http_seconds"),
        ("examples", "examples"),
    ):
        if getattr(args, name) is not None:
            size[key] = getattr(args, name)
    t0 = time.perf_counter()
    home = demo_home(args.home)
    argv = [a for a in sys.argv[1:] if a not in ("--only",) and a not in sections_names()]
    results: dict[str, Any] = {
        "command": "make reliability"
        if not argv
        else "python -m benchmarks.reliability " + " ".join(argv),
        "size": size,
    }
    if RESULTS.exists() and args.only:
        results = {**json.loads(RESULTS.read_text()), **results}
    sections: dict[str, Callable[[], Any]] = {
        "ledger_storms": lambda: ledger_storms(size),
        "http_storms": lambda: http_storms(
            home, {"clients": size["clients"], "seconds": size["http_seconds"]}
        ),
        "idempotency_races": lambda: idempotency_races(home, size["racers"]),
        "component_faults": lambda: component_faults(home),
        "fuzzing": lambda: fuzzing(home, size["examples"]),
    }
    import os
    import threading

    lock = threading.Lock()
    load_start = os.getloadavg()

    def record(name: str, value: Any) -> None:
        with lock:
            results[name] = value
            results["finished"] = datetime.now(UTC).isoformat()
            results["minutes"] = round((time.perf_counter() - t0) / 60, 1)
            results["machine"] = (
                f"{platform.machine()}, {os.cpu_count()} cores shared, "
                f"Python {platform.python_version()}"
            )
            results["load_average"] = {
                "start": [round(x, 1) for x in load_start],
                "end": [round(x, 1) for x in os.getloadavg()],
            }
            write_report(results)

    chosen = [n for n in sections if not args.only or n in args.only]
    # The ledger storms wait on their databases most of the time: they run beside the rest.
    background = None
    if "ledger_storms" in chosen:
        log("== ledger_storms (in the background, beside the other sections)")
        background = threading.Thread(
            target=lambda: record("ledger_storms", sections["ledger_storms"]())
        )
        background.start()
    for name in chosen:
        if name == "ledger_storms":
            continue
        log(f"== {name}")
        record(name, sections[name]())
    if background is not None:
        background.join()
    log(f"done in {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
