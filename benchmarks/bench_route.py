"""Decision latency of the real request path (validate → score → route) on the demo world.

Runs in-process against ``serving.decide`` with the demo's models and online features, so it
measures routecast, not HTTP. Also measures one HTTP round trip via TestClient.

    python -m benchmarks.bench_route [--orders 2000] [--home .routecast]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select

from benchmarks.machine import machine
from routing.domain import Mode
from serving.decide import decide
from serving.ledger.tables import decision_shadows
from serving.runtime import Runtime
from serving.schemas.order import OrderIn
from serving.settings import Settings
from serving.shadow import ShadowWorker

POSTAL = ["10001", "94103", "60601", "73301", "33101", "98101", "02108", "30301", "80202", "85001"]


def _orders(skus: list[str], n: int, seed: int = 1) -> list[OrderIn]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice([1, 1, 1, 2, 2, 3, 5])
        lines = [
            {"line_id": str(j), "sku": s, "qty": rng.choice([1, 1, 2])}
            for j, s in enumerate(rng.sample(skus, k))
        ]
        out.append(
            OrderIn.model_validate(
                {
                    "order_id": f"B-{i}",
                    "destination": {"postal_code": rng.choice(POSTAL)},
                    "lines": lines,
                }
            )
        )
    return out


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def _live_ms(rt: Runtime, orders: list[OrderIn], now: datetime, gap_s: float) -> list[float]:
    lat = []
    for o in orders:
        t0 = time.perf_counter()
        decide(o, rt, now=now)
        lat.append((time.perf_counter() - t0) * 1000)
        if gap_s:
            time.sleep(gap_s)
    return lat


def _stats(lat: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(_pct(lat, 50), 3),
        "p95_ms": round(_pct(lat, 95), 3),
        "p99_ms": round(_pct(lat, 99), 3),
        "mean_ms": round(statistics.fmean(lat), 3),
    }


def shadow_overhead(rt: Runtime, orders: list[OrderIn], now: datetime) -> dict[str, object]:
    """Live predictive latency with shadow mode off and on (shadow ``cost``), orders back to
    back (the worker competes for the interpreter with every decision) and paced at one order
    per 10 ms (a moderately busy shop); ``enqueue_only`` leaves the jobs unplanned, so it is the
    live path's own added cost (building and queueing the job); plus what a shadow plan costs."""
    from routing import policy_from_dict, policy_to_dict

    live = rt.policy
    shadowed = policy_from_dict({**policy_to_dict(live), "shadow": {"mode": "cost"}})
    out: dict[str, object] = {
        "shadow_mode": "cost",
        "live_mode": "predictive",
        "orders": len(orders),
    }
    worker = rt.shadow
    for label, gap in (("back_to_back", 0.0), ("paced_10ms", 0.010)):
        rows: dict[str, object] = {}
        for state, pol in (
            ("off", live),
            ("on", shadowed),
            ("enqueue_only", shadowed),
            ("off_again", live),
        ):
            rt.policies.policy = pol
            # enqueue_only: a worker that never runs, so only the live path's own cost shows
            rt.shadow = (
                ShadowWorker(rt.ledger, len(orders) + 1) if state == "enqueue_only" else worker
            )
            rows[state] = _stats(_live_ms(rt, orders, now, gap))
            worker.drain(120)
        out[label] = rows
    rt.policies.policy, rt.shadow = live, worker
    with rt.engine.connect() as conn:  # the bench does not audit, so read the shadow rows direct
        stored = conn.execute(select(decision_shadows.c.comparison)).scalars().all()
    shadow_ms = [float(c["ms"]) for c in stored if c]
    out["stored_shadows"] = len(shadow_ms)
    if shadow_ms:
        out["shadow_plan_ms"] = _stats(shadow_ms)
    return out


def run(home: Path, n: int, shadow_orders: int = 1000) -> dict[str, object]:
    import tempfile

    # A throw-away ledger seeded from the demo: the shadow runs store rows, the demo stays clean.
    tmp = Path(tempfile.mkdtemp(prefix="bench-route-"))
    settings = Settings(home=home, database_url=f"sqlite:///{tmp / 'ledger.db'}")
    rt = Runtime(settings)
    rt.start(background=False)
    skus = sorted(
        {s for (_, s), q in (rt.snapshot.on_hand().items() if rt.snapshot else []) if q > 0}
    )
    orders = _orders(skus, n)
    now = datetime.now(UTC)
    for o in orders[:50]:  # warm-up
        decide(o, rt, now=now)
    results: dict[str, object] = {"machine": machine(), "orders": n, "nodes": len(rt.nodes)}
    for mode in ("predictive", "cost", "priority"):
        lat: list[float] = []
        stages: dict[str, list[float]] = {"validate": [], "stock": [], "score": [], "route": []}
        for o in orders:
            body = o.model_copy(update={"mode": Mode(mode)})  # model_copy skips validation
            t0 = time.perf_counter()
            ans = decide(body, rt, now=now)
            lat.append((time.perf_counter() - t0) * 1000)
            for k in stages:
                stages[k].append(ans["timings_ms"][k])
        results[mode] = {
            "p50_ms": round(_pct(lat, 50), 3),
            "p95_ms": round(_pct(lat, 95), 3),
            "p99_ms": round(_pct(lat, 99), 3),
            "mean_ms": round(statistics.fmean(lat), 3),
            "throughput_per_s_one_core": round(1000 / statistics.fmean(lat), 1),
            "stage_p50_ms": {k: round(_pct(v, 50), 3) for k, v in stages.items()},
        }
    results["shadow"] = shadow_overhead(rt, orders[:shadow_orders], now)
    # model call cost for a batch of 100 candidate rows
    m = rt.models.get("stockout")
    if m is not None:
        x = np.random.default_rng(0).uniform(0, 10, (100, len(m.model.feature_names_)))
        t0 = time.perf_counter()
        for _ in range(200):
            m.model.predict_array(x)
        results["stockout_predict_100_rows_ms"] = round((time.perf_counter() - t0) / 200 * 1000, 3)
        t0 = time.perf_counter()
        for i in range(100):
            m.model.predict_array(x[i : i + 1])
        results["stockout_predict_100_single_row_calls_ms"] = round(
            (time.perf_counter() - t0) * 1000, 3
        )
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    ap.add_argument("--shadow-orders", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/route.json"))
    args = ap.parse_args()
    res = run(args.home, args.orders, args.shadow_orders)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
