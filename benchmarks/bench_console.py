"""Console page load times on the demo world (server time to a full HTML answer).

Builds a fresh ledger next to the demo (so the demo's own ledger is untouched), places orders
through the API (some shipped, delivered and rejected so every KPI has data), signs in to the
console and times each page through the ASGI app (TestClient: no network, no browser).

    python -m benchmarks.bench_console [--orders 200] [--repeats 20] [--home .routecast]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from benchmarks.machine import machine
from serving.app import create_app
from serving.settings import Settings

POSTAL = ["10001", "94103", "60601", "73301", "33101", "98101", "02108", "30301", "80202", "85001"]
CHANNELS = ["web", "web", "web", "marketplace", "store"]


def _place(client: TestClient, skus: list[str], n: int, rng: random.Random) -> list[str]:
    placed = []
    channels = set(client.app.state.runtime.policy.channel_names)  # type: ignore[attr-defined]
    for i in range(n):
        lines = [
            {"line_id": str(j), "sku": s, "qty": 1}
            for j, s in enumerate(rng.sample(skus, rng.choice([1, 1, 2, 3])))
        ]
        channel = rng.choice([c for c in CHANNELS if c in channels] or ["web"])
        body = {
            "order_id": f"CB-{i}",
            "channel": channel,
            "destination": {"country": "US", "postal_code": rng.choice(POSTAL)},
            "lines": lines,
        }
        if client.post("/v1/orders", json=body).status_code == 201:
            placed.append(body["order_id"])
    return placed


def _life(client: TestClient, order_ids: list[str], rng: random.Random) -> None:
    """Ship half, confirm delivery of half of those, reject a tenth (each rerouted)."""
    for oid in order_ids:
        roll = rng.random()
        if roll < 0.1:
            order = client.get(f"/v1/orders/{oid}").json()
            a = order["allocations"][0]
            client.post(
                f"/v1/orders/{oid}/rejections",
                json={"node_id": a["node_id"], "line_ids": [a["line_id"]], "reason": "damaged"},
            )
        elif roll < 0.6:
            r = client.post(f"/v1/orders/{oid}/shipments", json={"carrier": "ups"})
            if r.status_code == 200 and rng.random() < 0.5:
                for s in r.json()["shipments"]:
                    client.post(
                        f"/v1/orders/{oid}/deliveries",
                        json={
                            "deliveries": [
                                {
                                    "event_id": f"d-{s['shipment_id']}",
                                    "shipment_id": s["shipment_id"],
                                    "delivered_at": datetime.now(UTC).isoformat(),
                                }
                            ]
                        },
                    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--home", default=".routecast")
    ap.add_argument("--out", default="benchmarks/results/console")
    args = ap.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(args.home), database_url=f"sqlite:///{tmp}/ledger.db")
        app = create_app(settings, background=False)
        with TestClient(app) as client:
            runtime = app.state.runtime
            raw = runtime.keys.create({"route", "orders", "inventory", "admin"}, "bench")
            client.headers["Authorization"] = f"Bearer {raw}"
            skus = [r["sku"] for r in client.get("/v1/skus?limit=40").json()]
            t0 = time.perf_counter()
            placed = _place(client, skus, args.orders, rng)
            _life(client, placed, rng)
            setup_s = time.perf_counter() - t0
            del client.headers["Authorization"]
            page = client.get("/console/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf is not None
            client.post("/console/login", data={"csrf": csrf.group(1), "api_key": raw})
            node = runtime.nodes[0].node_id
            pages = {
                "orders (search, newest 200)": "/console/orders",
                "orders (by node)": f"/console/orders?node_id={node}",
                "order detail": f"/console/orders/{placed[0]}",
                "nodes": "/console/nodes",
                "node detail": f"/console/nodes/{node}",
                "kpis (7 d)": "/console/kpis",
                "models": "/console/models",
                "shadow and backtest": "/console/shadow",
            }
            results = {}
            for name, path in pages.items():
                client.get(path)  # first render compiles the template
                times = []
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    r = client.get(path)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, (path, r.status_code)
                times.sort()
                results[name] = {
                    "path": path,
                    "median_ms": round(statistics.median(times), 1),
                    "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
                    "max_ms": round(times[-1], 1),
                }
    report = {
        "what": "console pages, server time through the ASGI app (TestClient), after one warm-up",
        "world": f"demo ({settings.scale}) in {args.home}",
        "orders": len(placed),
        "setup_s": round(setup_s, 1),
        "repeats": args.repeats,
        "load_avg_1m": os.getloadavg()[0],
        "machine": machine(),
        "pages": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Console page load times",
        "",
        f"{report['what']}; {report['world']}, {len(placed)} orders placed through the API "
        f"(half shipped, a quarter delivered, a tenth rejected and rerouted); {args.repeats} "
        f"loads per page; load average {report['load_avg_1m']:.2f} on "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}).",
        "",
        "| page | median ms | p95 ms | max ms |",
        "|---|---:|---:|---:|",
        *(
            f"| {n} | {r['median_ms']} | {r['p95_ms']} | {r['max_ms']} |"
            for n, r in results.items()
        ),
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
