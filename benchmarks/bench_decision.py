"""The whole in-process decision over a lines × candidate-nodes grid on a generated network,
side by side with the straightforward stack on the same orders.

The generated world is real end to end: canonical tables (nodes, SKUs, stock) that the
catalogue and ledger load, feature tables applied and materialised into a Feast SQLite online
store, and the demo's registered models. SKUs come in families stocked at exactly 10, 50,
200 or 1,000 nodes, so an order of ``L`` lines from family ``N`` has ``N`` candidate nodes per
line. Feature values are rows of the demo's own feature tables, re-keyed.

* ``routecast``: ``serving.decide.decide`` (validation, ledger availability, feature lookup
  from the in-memory snapshot, both models, fences, ratings, allocation, promise, answer);
* ``straightforward``: the same order and ledger, but features from Feast
  ``get_online_features`` (the models' feature services) per request, pandas frames, MLflow
  pyfunc ``predict`` per request and model, then the same routing core.

    python -m benchmarks.bench_decision [--quick] [--home .routecast]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import stamp

LINES = (1, 5, 12)
NODES = (10, 50, 200, 1000)
#: the cells the summary reads
KEY_CELLS = ((5, 200), (12, 200))
SKUS_PER_FAMILY = 12
#: destinations of the generated orders (postal code → region lanes are generated for)
POSTAL = ("10001", "94103", "60601", "73301", "33101", "98101")
WORLD_VERSION = "1"


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(xs), q)), 3)


def build_world(demo: Path, target: Path, seed: int = 5) -> Path:
    """Write the generated world under ``target`` (reused when already built)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from features.store import apply_definitions, materialize, open_store
    from serving.destinations import locate
    from serving.schemas.order import Destination

    done = target / "world.json"
    if done.exists() and json.loads(done.read_text()).get("version") == WORLD_VERSION:
        return target
    if target.exists():
        shutil.rmtree(target)
    raw, feat = target / "data" / "raw", target / "features"
    raw.mkdir(parents=True)
    feat.mkdir(parents=True)
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    stamp_at = now - timedelta(hours=1)
    n_max = max(NODES)
    zones = ["America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"]
    nodes = [f"G{i:04d}" for i in range(n_max)]
    types = [rng.choice(["dc", "store", "store", "store", "3pl"]) for _ in nodes]
    lat = [rng.uniform(27, 47) for _ in nodes]
    lon = [rng.uniform(-122, -72) for _ in nodes]
    pq.write_table(
        pa.table(
            {
                "node_id": nodes,
                "node_type": types,
                "name": nodes,
                "city": ["x"] * n_max,
                "state": ["NY"] * n_max,
                "postal_code": ["10001"] * n_max,
                "lat": lat,
                "lon": lon,
                "timezone": [rng.choice(zones) for _ in nodes],
                "priority": [rng.randint(0, 9) for _ in nodes],
                "enabled": [True] * n_max,
                # no daily capacity limits: the ledger re-counts a limited node's orders with one
                # query per node (every 2 s), which would dominate a 1,000-node grid
                "daily_capacity": [0] * n_max,
                "handling_cost": [rng.uniform(0.5, 3.0) for _ in nodes],
                "ships_groups": [""] * n_max,
            }
        ),
        raw / "nodes.parquet",
    )
    demo_skus = pq.ParquetFile(demo / "data" / "raw" / "skus.parquet").read().to_pylist()
    skus, stock = [], []
    for fam in NODES:
        for k in range(SKUS_PER_FAMILY):
            base = rng.choice(demo_skus)
            sku = f"N{fam}-{k:02d}"
            skus.append({**base, "sku": sku})
            for node in rng.sample(nodes, fam):
                stock.append((node, sku, rng.randint(5, 60)))
    pq.write_table(pa.Table.from_pylist(skus), raw / "skus.parquet")
    pq.write_table(
        pa.table(
            {
                "event_timestamp": pa.array([stamp_at] * len(stock), pa.timestamp("ns", "UTC")),
                "node_id": [s[0] for s in stock],
                "sku": [s[1] for s in stock],
                "on_hand": [s[2] for s in stock],
                "days_since_count": [3] * len(stock),
            }
        ),
        raw / "inventory_snapshots.parquet",
    )
    # feature tables: demo rows re-keyed onto the generated entities
    demo_feat = demo / "features"
    regions = sorted({locate(Destination(postal_code=p)).region for p in POSTAL} - {None})

    def rekeyed(view: str, keys: list[dict[str, Any]], fix: dict[str, list[Any]]) -> None:
        src = pq.ParquetFile(demo_feat / f"{view}.parquet").read()
        rows = src.to_pylist()
        out = []
        for i, key in enumerate(keys):
            row = dict(rng.choice(rows))
            row.update(key)
            for col, values in fix.items():
                row[col] = values[i]
            row["event_timestamp"] = stamp_at
            out.append(row)
        pq.write_table(pa.Table.from_pylist(out, schema=src.schema), feat / f"{view}.parquet")

    codes = {"dc": 0, "store": 1, "3pl": 2}
    rekeyed(
        "node_profile",
        [{"node_id": n} for n in nodes],
        {
            "node_type_code": [codes[t] for t in types],
            "node_lat": lat,
            "node_lon": lon,
            "daily_capacity": [1_000_000] * n_max,
        },
    )
    rekeyed("node_ops", [{"node_id": n} for n in nodes], {})
    rekeyed(
        "node_sku_inventory",
        [{"node_id": n, "sku": s} for n, s, _ in stock],
        {"on_hand": [q for _, _, q in stock]},
    )
    rekeyed(
        "lane_performance", [{"node_id": n, "dest_region": r} for n in nodes for r in regions], {}
    )
    store = open_store(feat)
    apply_definitions(store, feat)
    materialize(store, end=now)
    done.write_text(json.dumps({"version": WORLD_VERSION, "built_at": now.isoformat()}))
    return target


def world_runtime(world: Path, demo: Path, score_memo: bool = True) -> Any:
    """A started runtime on the generated world with the demo's models (registry copied);
    ``score_memo=False`` scores every pair with the models (``serving.score_memo`` off)."""
    from serving.runtime import Runtime
    from serving.settings import Settings

    reg = world / "mlflow.db"
    shutil.copy(demo / "mlflow.db", reg)
    ledger = world / "ledger.db"
    ledger.unlink(missing_ok=True)
    settings = Settings(
        home=world,
        mlflow_tracking_uri=f"sqlite:///{reg.resolve()}",
        database_url=f"sqlite:///{ledger.resolve()}",
        live_features_seconds=0,
        score_memo=score_memo,
    )
    rt = Runtime(settings)
    rt.start(background=False)
    if rt.degraded_reasons(datetime.now(UTC)):
        raise RuntimeError(f"generated world is degraded: {rt.degraded_reasons(datetime.now(UTC))}")
    return rt


def orders(lines: int, nodes: int, count: int, seed: int) -> list[Any]:
    from serving.schemas.order import OrderIn

    rng = random.Random(seed * 7919 + lines * 31 + nodes)
    out = []
    for i in range(count):
        picked = rng.sample(range(SKUS_PER_FAMILY), lines)
        out.append(
            OrderIn.model_validate(
                {
                    "order_id": f"G-{lines}x{nodes}-{i}",
                    "destination": {"postal_code": rng.choice(POSTAL)},
                    "lines": [
                        {"line_id": str(j), "sku": f"N{nodes}-{k:02d}", "qty": 1}
                        for j, k in enumerate(picked)
                    ],
                }
            )
        )
    return out


class Straightforward:
    """Feast online read + MLflow pyfunc per request, pandas in between, same routing core."""

    def __init__(self, rt: Any) -> None:
        import mlflow

        from features import catalog
        from features.store import open_feature_store

        self.rt = rt
        self.store = open_feature_store(rt.settings)
        mlflow.set_tracking_uri(rt.settings.tracking_uri)
        mlflow.set_registry_uri(rt.settings.tracking_uri)
        alias = rt.settings.model_alias
        self.stockout = mlflow.pyfunc.load_model(f"models:/{rt.settings.stockout_model}@{alias}")
        self.delivery = mlflow.pyfunc.load_model(f"models:/{rt.settings.delivery_model}@{alias}")
        self.services = {
            "stockout": (
                self.store.get_feature_service(catalog.SERVICE_STOCKOUT),
                catalog.STOCKOUT_FEATURES,
            ),
            "delivery": (
                self.store.get_feature_service(catalog.SERVICE_DELIVERY),
                catalog.DELIVERY_FEATURES,
            ),
        }

    def decide(self, body: Any, now: datetime) -> dict[str, Any]:
        import pandas as pd

        from routing import Mode, Prediction, candidate_pairs, plan_to_dict, route
        from serving.decide import to_order

        rt = self.rt
        order = to_order(body, rt)
        network = rt.network_for([ln.sku for ln in order.lines])
        pairs = candidate_pairs(order, network, rt.policy, now)
        by_line = {ln.line_id: ln for ln in order.lines}
        entity = pd.DataFrame(
            {
                "line_id": [lid for lid, _ in pairs],
                "node_id": [nid for _, nid in pairs],
                "sku": [by_line[lid].sku for lid, _ in pairs],
                "dest_region": order.dest_region,
                "dest_lat": order.dest_lat,
                "dest_lon": order.dest_lon,
                "qty": [float(by_line[lid].qty) for lid, _ in pairs],
                "weekday": float(now.weekday()),
            }
        )
        rows = entity[["node_id", "sku", "dest_region", "dest_lat", "dest_lon"]].to_dict("records")
        frames = {}
        for role, (service, names) in self.services.items():
            online = self.store.get_online_features(features=service, entity_rows=rows).to_df()
            frame = pd.concat([online.reset_index(drop=True), entity[["qty", "weekday"]]], axis=1)
            frames[role] = frame[list(names)].astype(float).fillna(0.0)
        p_stock = self.stockout.predict(frames["stockout"])["p_stockout"].to_numpy()
        days = self.delivery.predict(frames["delivery"])
        entity["p_stockout"] = p_stock
        entity["days_p50"] = days["days_p50"].to_numpy()
        entity["days_p90"] = days["days_p90"].to_numpy()
        predictions = {
            (r.line_id, r.node_id): Prediction(
                p_stockout=float(r.p_stockout),
                days_p50=float(r.days_p50),
                days_p90=float(r.days_p90),
            )
            for r in entity.itertuples()
        }
        plan = route(
            order,
            network,
            mode=Mode.PREDICTIVE,
            policy=rt.policy,
            predictions=predictions,
            now=now,
            ranking=None if body.ranking_top == "all" else body.ranking_top,  # the same answer
        )
        return plan_to_dict(plan)


def _count(lines: int, nodes: int, quick: bool) -> int:
    """Orders per cell: enough for a p99 where the summary reads it, fewer in the slow cells
    so the full grid takes a few minutes."""
    if quick:
        return 60
    if (lines, nodes) in KEY_CELLS:
        return 300
    return 400 if lines * nodes <= 1000 else 120


def _cell(lines: int, nodes: int, lat: list[float], cpu: list[float]) -> dict[str, Any]:
    return {
        "lines": lines,
        "nodes": nodes,
        "orders": len(lat),
        "p50_ms": _pct(lat, 50),
        "p99_ms": _pct(lat, 99),
        "mean_ms": round(statistics.fmean(lat), 3),
        "max_ms": round(max(lat), 3),
        "cpu_p50_ms": _pct(cpu, 50),
    }


def _memo_counts(rt: Any) -> tuple[int, int, int, int]:
    """Cumulative (stock rows, hits, delivery rows, hits) of the runtime's score memo."""
    memo = getattr(rt.snapshot, "memo", None)
    st = getattr(memo, "stats", None)
    if st is None:
        return (0, 0, 0, 0)
    return (st.stock_rows, st.stock_hits, st.delivery_rows, st.delivery_hits)


def _hit_rates(before: tuple[int, ...], after: tuple[int, ...]) -> dict[str, float | None]:
    """Share of rows the score memo answered between two counts (``None``: none looked up).
    A snapshot refresh starts a new memo: its counts then restart below ``before``."""
    d = [a - b for a, b in zip(after, before, strict=True)]
    if any(x < 0 for x in d):
        d = list(after)
    return {
        "stock_hit_rate": round(d[1] / d[0], 4) if d[0] else None,
        "delivery_hit_rate": round(d[3] / d[2], 4) if d[2] else None,
    }


def _allocated(answer: dict[str, Any]) -> list[tuple[str, str, float]]:
    return sorted((a["line_id"], a["node_id"], a["qty"]) for a in answer["allocations"])


def measure(
    rt: Any, cells: list[tuple[int, int]], quick: bool, now: datetime, label: str = ""
) -> list[dict[str, Any]]:
    """The whole decision per cell on a started runtime: latency, CPU, stages, optimality
    and the score memo's hit rates."""
    from serving.decide import decide

    grid: list[dict[str, Any]] = []
    for lines, nodes in cells:
        batch = orders(lines, nodes, _count(lines, nodes, quick), seed=1)
        for o in batch[:5]:  # warm-up
            decide(o, rt, now=now)
        lat, cpu = [], []
        stages: dict[str, list[float]] = {}
        optimal = 0
        counts = _memo_counts(rt)
        for o in batch:
            c0, t0 = time.thread_time(), time.perf_counter()
            ans = decide(o, rt, now=now)
            lat.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.thread_time() - c0) * 1000)
            optimal += bool(ans["search"]["optimal"])
            for k, v in ans["timings_ms"].items():
                stages.setdefault(k, []).append(v)
        cell = _cell(lines, nodes, lat, cpu)
        cell["proven_optimal"] = optimal
        cell["stages_p50_ms"] = {k: _pct(v, 50) for k, v in stages.items()}
        cell["score_memo"] = _hit_rates(counts, _memo_counts(rt))
        grid.append(cell)
        print(
            f"decision{label} {lines}x{nodes}: p50 {cell['p50_ms']} ms p99 {cell['p99_ms']} ms "
            f"(cpu p50 {cell['cpu_p50_ms']} ms, {optimal}/{len(batch)} proven optimal; "
            f"score memo hits {cell['score_memo']})",
            flush=True,
        )
    return grid


def run(
    demo: Path,
    work: Path,
    quick: bool,
    straight_cells: list[tuple[int, int]],
    score_memo: bool = True,
    cells: list[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The grid (or ``cells``) and the straightforward stack on ``straight_cells``. With the
    score memo on, the summary's cells run again on a runtime without it (``routecast_cold``):
    what an order whose pairs the memo has not seen costs."""
    from serving.decide import decide

    t_build = time.perf_counter()
    world = build_world(demo, work / "decision-world")
    built_s = round(time.perf_counter() - t_build, 1)
    now = datetime.now(UTC)
    wanted = cells if cells is not None else [(ln, n) for ln in LINES for n in NODES]
    cold: list[dict[str, Any]] = []
    if score_memo:
        cold_cells = [c for c in KEY_CELLS if c in wanted]
        if cold_cells:
            rt_cold = world_runtime(world, demo, score_memo=False)
            try:
                cold = measure(rt_cold, cold_cells, quick, now, " (memo off)")
            finally:
                rt_cold.stop()
    rt = world_runtime(world, demo, score_memo)
    try:
        grid = measure(rt, wanted, quick, now)
        straight: list[dict[str, Any]] = []
        if straight_cells:
            sf = Straightforward(rt)
            for lines, nodes in straight_cells:
                batch = orders(lines, nodes, 20 if quick else 100, seed=1)
                sf.decide(batch[0], now)
                # paired, order by order: both stacks see the same machine load
                theirs, ours, same = [], [], 0
                for o in batch:
                    t0 = time.perf_counter()
                    plan = sf.decide(o, now)
                    theirs.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    ans = decide(o, rt, now=now)
                    ours.append((time.perf_counter() - t0) * 1000)
                    same += _allocated(plan) == _allocated(ans)
                cell = {
                    "lines": lines,
                    "nodes": nodes,
                    "orders": len(batch),
                    "p50_ms": _pct(theirs, 50),
                    "p99_ms": _pct(theirs, 99),
                    "routecast_p50_ms": _pct(ours, 50),
                    "routecast_p99_ms": _pct(ours, 99),
                    "speedup_p50": round(_pct(theirs, 50) / _pct(ours, 50), 1),
                    "same_allocations": same,
                }
                straight.append(cell)
                print(
                    f"straightforward {lines}x{nodes}: p50 {cell['p50_ms']} ms "
                    f"(routecast {cell['routecast_p50_ms']} ms on the same orders, "
                    f"{cell['speedup_p50']}x; same allocations {same}/{len(batch)})",
                    flush=True,
                )
    finally:
        rt.stop()
    return {
        **stamp(),
        "quick": quick,
        "score_memo": score_memo,
        "world": {
            "nodes": max(NODES),
            "skus_per_family": SKUS_PER_FAMILY,
            "families": list(NODES),
            "built_seconds": built_s,
        },
        "routecast": grid,
        "routecast_cold": cold,
        "straightforward": straight,
    }


_HEAD = (
    "| lines | nodes | orders | p50 ms | p99 ms | cpu p50 ms | proven optimal | "
    "stages p50 ms (validate / stock / score / route) | memo hits (stock / delivery) |"
)
_HEAD_RULE = "|---:|---:|---:|---:|---:|---:|---:|---|---|"


def _row(c: dict[str, Any]) -> str:
    st = c.get("stages_p50_ms", {})
    stages = " / ".join(str(st.get(k, "-")) for k in ("validate", "stock", "score", "route"))
    memo = c.get("score_memo") or {}
    hits = " / ".join(
        "-" if memo.get(k) is None else str(memo[k])
        for k in ("stock_hit_rate", "delivery_hit_rate")
    )
    return (
        f"| {c['lines']} | {c['nodes']} | {c['orders']} | {c['p50_ms']} | {c['p99_ms']} | "
        f"{c.get('cpu_p50_ms', '-')} | {c.get('proven_optimal', '-')}/{c['orders']} | "
        f"{stages} | {hits} |"
    )


def markdown(result: dict[str, Any]) -> str:
    """``decision.md``: the grid, the straightforward stack beside it, and how it was run."""
    load = result.get("load_average")
    out = [
        "# In-process decision latency",
        "",
        "`python -m benchmarks.bench_decision` (`make bench` / `make bench-full`): "
        "`serving.decide.decide` on a started runtime over a generated network "
        f"({result['world']['nodes']} nodes; SKU families stocked at exactly "
        f"{', '.join(str(n) for n in result['world']['families'])} nodes, each SKU at its own "
        "random nodes), destinations from six postal codes, qty 1 per line. Each decision: "
        "validation, ledger availability, feature lookup in the in-memory snapshot, both "
        "models, fences, ratings, exact allocation, promise and the answer (every "
        "candidate ranked; the best 10 per line and the allocated ones listed with their "
        "terms, the API's default).",
        "",
        f"Measured {result.get('measured_at')} on {result['machine']['cpu']} "
        f"({result['machine']['cores']} cores), load average {load} at the start"
        f"{' (quick form)' if result.get('quick') else ''}. `cpu` is the deciding thread's "
        "CPU time, which a busy machine inflates less than wall time. Score memo "
        f"{'on' if result.get('score_memo', True) else 'off (`--cold`: every pair scored)'}; "
        "`memo hits` is the share of stockout / delivery rows it answered in the cell "
        "(the cell's orders reuse its 12 SKUs and six destinations, so a warm memo sees more "
        "repeats than a catalogue of thousands of SKUs would).",
        "",
        _HEAD,
        _HEAD_RULE,
        *(_row(c) for c in result["routecast"]),
    ]
    if result.get("routecast_cold"):
        out += [
            "",
            "The same cells on a runtime with the score memo off (every pair scored by the "
            "models), measured first in the same run:",
            "",
            _HEAD,
            _HEAD_RULE,
            *(_row(c) for c in result["routecast_cold"]),
        ]
    if result["straightforward"]:
        out += [
            "",
            "Straightforward stack (Feast `get_online_features` with the models' feature "
            "services per request, pandas frames, MLflow pyfunc `predict` per model, the same "
            "routing core), order by order beside routecast on the same orders:",
            "",
            "| lines | nodes | orders | straightforward p50 ms | p99 ms | routecast p50 ms | "
            "p99 ms | speed-up at p50 | same allocations |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in result["straightforward"]:
            out.append(
                f"| {c['lines']} | {c['nodes']} | {c['orders']} | {c['p50_ms']} | "
                f"{c['p99_ms']} | {c.get('routecast_p50_ms', '-')} | "
                f"{c.get('routecast_p99_ms', '-')} | {c['speedup_p50']}x | "
                f"{c.get('same_allocations', '-')}/{c['orders']} |"
            )
    out += ["", "![latency against nodes × lines](decision_latency.png)", ""]
    return "\n".join(out)


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for lines in LINES:
        cells = [c for c in result["routecast"] if c["lines"] == lines]
        xs = [c["nodes"] for c in cells]
        ax.plot(xs, [c["p50_ms"] for c in cells], marker="o", label=f"{lines} lines p50")
        ax.plot(xs, [c["p99_ms"] for c in cells], marker="x", ls="--", label=f"{lines} lines p99")
    for c in result["straightforward"]:
        ax.scatter([c["nodes"]], [c["p50_ms"]], marker="s", color="black")
        ax.annotate(f"straightforward {c['lines']}x{c['nodes']} p50", (c["nodes"], c["p50_ms"]))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("candidate nodes per line")
    ax.set_ylabel("decision latency (ms)")
    load = result.get("load_average") or ["?"]
    ax.set_title(f"whole decision, in process (load average {load[0]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    ap.add_argument("--work", type=Path, default=Path(".routecast/bench"))
    ap.add_argument("--out", type=Path, default=None, help="write decision.{json,md,png} here")
    ap.add_argument(
        "--cold",
        action="store_true",
        help="score every pair with the models: the score memo off (Settings.score_memo)",
    )
    ap.add_argument(
        "--cells",
        nargs="+",
        metavar="LxN",
        help="only these cells, e.g. 5x200 12x200 (default: the whole grid)",
    )
    ap.add_argument(
        "--no-straightforward", action="store_true", help="skip the straightforward stack"
    )
    args = ap.parse_args()
    only = None
    if args.cells:
        only = [(int(a), int(b)) for a, b in (c.lower().split("x") for c in args.cells)]
    straight = [(5, 200)] if args.quick else [(1, 200), (5, 200), (12, 200)]
    res = run(
        args.home.resolve(),
        args.work.resolve(),
        args.quick,
        [] if args.no_straightforward else straight,
        score_memo=not args.cold,
        cells=only,
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "decision.json").write_text(json.dumps(res, indent=2) + "\n")
        (args.out / "decision.md").write_text(markdown(res))
        plot(res, args.out / "decision_latency.png")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
