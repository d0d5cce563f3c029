"""Allocator quality and speed over a lines × nodes grid: exact branch-and-bound vs bounded search.

Pure ``routing`` on synthetic networks (US-wide nodes, random stock and predictions), so it
measures the decision core only. Writes benchmarks/results/allocator.{md,json}.

    python -m benchmarks.bench_allocator [--quick]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import load_average, stamp
from routing import (
    Network,
    Node,
    Order,
    OrderLine,
    Prediction,
    StockRow,
    candidate_pairs,
    policy_from_dict,
    route,
)

NOW = datetime(2024, 5, 8, 15, tzinfo=UTC)
N_SKUS = 40


def world(n_nodes: int, seed: int) -> Network:
    rng = random.Random(seed)
    nodes = [
        Node(
            node_id=f"N{i:03d}",
            node_type=rng.choice(["dc", "store", "store", "3pl"]),
            lat=rng.uniform(26, 48),
            lon=rng.uniform(-122, -71),
            priority=rng.randint(0, 9),
            handling_cost=rng.uniform(0.5, 3.0),
        )
        for i in range(n_nodes)
    ]
    stock = [
        StockRow(n.node_id, f"SKU-{s:03d}", float(rng.randint(0, 8)))
        for n in nodes
        for s in range(N_SKUS)
        if rng.random() < 0.6
    ]
    return Network(nodes, stock)


def orders(n_lines: int, count: int, seed: int) -> list[Order]:
    rng = random.Random(seed)
    out = []
    for k in range(count):
        skus = rng.sample(range(N_SKUS), n_lines)
        lines = tuple(
            OrderLine(
                str(j),
                f"SKU-{s:03d}",
                float(rng.choice([1, 1, 2, 3])),
                weight_kg=rng.uniform(0.2, 4),
                unit_price=rng.uniform(5, 80),
            )
            for j, s in enumerate(skus)
        )
        out.append(
            Order(
                f"B{k}", "web", rng.uniform(27, 47), rng.uniform(-120, -73), lines, promise_days=3.0
            )
        )
    return out


def predictions(order: Order, network: Network, seed: int) -> dict[tuple[str, str], Prediction]:
    rng = random.Random(seed)
    out = {}
    for pair in candidate_pairs(order, network, None, NOW):
        p50 = rng.uniform(1, 5)
        out[pair] = Prediction(rng.betavariate(1, 12), p50, p50 * rng.uniform(1.2, 2.0))
    return out


def _timed(order: Order, network: Network, preds: Any, policy: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    plan = route(order, network, mode="predictive", policy=policy, predictions=preds, now=NOW)
    return (time.perf_counter() - t0) * 1000, plan


def cell(n_lines: int, n_nodes: int, count: int, bounded_states: int) -> dict[str, Any]:
    network = world(n_nodes, seed=n_nodes)
    exact_pol = policy_from_dict({"search": {"exact_max_lines": 1000, "max_states": 300_000}})
    bounded_pol = policy_from_dict(
        {"search": {"exact_max_lines": 1, "bounded_states": bounded_states}}
    )
    greedy_pol = policy_from_dict({"search": {"exact_max_lines": 1, "bounded_states": 10}})
    ex_ms, bd_ms, gr_ms, gaps, gr_gaps, states = [], [], [], [], [], []
    proven = 0
    for i, o in enumerate(orders(n_lines, count, seed=1000 * n_lines + n_nodes)):
        preds = predictions(o, network, seed=i)
        t_e, pe = _timed(o, network, preds, exact_pol)
        t_b, pb = _timed(o, network, preds, bounded_pol)
        t_g, pg = _timed(o, network, preds, greedy_pol)
        ex_ms.append(t_e)
        bd_ms.append(t_b)
        gr_ms.append(t_g)
        states.append(pe.search_states)
        if pe.optimal and pe.shippable and pb.shippable:
            proven += 1
            gaps.append((pb.total_cost - pe.total_cost) / pe.total_cost * 100)
            gr_gaps.append((pg.total_cost - pe.total_cost) / pe.total_cost * 100)

    def pct(xs: list[float], q: float) -> float:
        return round(sorted(xs)[min(len(xs) - 1, int(q * len(xs)))], 3) if xs else float("nan")

    return {
        "lines": n_lines,
        "nodes": n_nodes,
        "orders": count,
        "exact_proven": proven,
        "exact_ms_p50": pct(ex_ms, 0.5),
        "exact_ms_p95": pct(ex_ms, 0.95),
        "exact_states_p50": pct([float(s) for s in states], 0.5),
        "bounded_ms_p50": pct(bd_ms, 0.5),
        "bounded_gap_pct_mean": round(statistics.fmean(gaps), 4) if gaps else None,
        "bounded_gap_pct_max": round(max(gaps), 4) if gaps else None,
        "greedy_ls_ms_p50": pct(gr_ms, 0.5),
        "greedy_ls_gap_pct_mean": round(statistics.fmean(gr_gaps), 4) if gr_gaps else None,
        "greedy_ls_gap_pct_max": round(max(gr_gaps), 4) if gr_gaps else None,
    }


def typical(count: int) -> dict[str, Any]:
    """1-3 line orders over 30 nodes, every mode: the per-order hot path."""
    network = world(30, seed=30)
    rng = random.Random(5)
    res: dict[str, Any] = {}
    sample = [o for n in (1, 2, 3) for o in orders(n, count // 3, seed=n)]
    rng.shuffle(sample)
    preds = [predictions(o, network, seed=i) for i, o in enumerate(sample)]
    for mode in ("predictive", "cost", "priority", "distance", "high_stock"):
        for o, p in zip(sample[:20], preds[:20], strict=True):  # warm-up
            route(o, network, mode=mode, predictions=p, now=NOW)  # type: ignore[arg-type]
        lat = []
        for o, p in zip(sample, preds, strict=True):
            t0 = time.perf_counter()
            route(o, network, mode=mode, predictions=p, now=NOW)  # type: ignore[arg-type]
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        res[mode] = {
            "p50_ms": round(lat[len(lat) // 2], 4),
            "p99_ms": round(lat[int(len(lat) * 0.99)], 4),
            "mean_ms": round(statistics.fmean(lat), 4),
        }
    return res


def to_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        "# Allocator benchmark",
        "",
        f"`python -m benchmarks.bench_allocator{' --quick' if res['quick'] else ''}` — pure `routing`, "
        "predictive mode, synthetic US-wide networks (60 % of node×SKU pairs stocked, 0-8 units), "
        "random predictions, promise 3 days.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared with other jobs), {m['memory']}, "
        f"Python {m['python']}, {m['system']}; measured {res.get('measured_at')}, load "
        f"average {res.get('load_average')} before and {res.get('load_average_after')} after. "
        "Single-threaded (Python and numpy).",
        "",
        "## Typical orders (1-3 lines × 30 nodes), whole `route()` call",
        "",
        "| mode | p50 ms | p99 ms | mean ms |",
        "|---|---:|---:|---:|",
    ]
    for mode, v in res["typical"].items():
        out.append(f"| {mode} | {v['p50_ms']} | {v['p99_ms']} | {v['mean_ms']} |")
    out += [
        "",
        "## Exact vs bounded search (whole `route()` call, ms; gap = extra expected cost vs the proven optimum)",
        "",
        f"Bounded = branch-and-bound with a {res['bounded_states']}-state budget after greedy + local "
        "search; greedy+LS = the seed alone.",
        "",
        "| lines | nodes | orders | proven optimal | exact p50 | exact p95 | B&B states p50 | bounded p50 | bounded gap mean % | bounded gap max % | greedy+LS p50 | greedy+LS gap mean % | greedy+LS gap max % |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in res["grid"]:
        out.append(
            f"| {c['lines']} | {c['nodes']} | {c['orders']} | {c['exact_proven']} | {c['exact_ms_p50']} | "
            f"{c['exact_ms_p95']} | {c['exact_states_p50']} | {c['bounded_ms_p50']} | {c['bounded_gap_pct_mean']} | "
            f"{c['bounded_gap_pct_max']} | {c['greedy_ls_ms_p50']} | {c['greedy_ls_gap_pct_mean']} | "
            f"{c['greedy_ls_gap_pct_max']} |"
        )
    out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/allocator"))
    args = ap.parse_args()
    lines = [1, 3, 10] if args.quick else [1, 3, 5, 10, 12]
    nodes = [30, 200] if args.quick else [30, 100, 200]
    count = 10 if args.quick else 25
    bounded = 2000
    res: dict[str, Any] = {
        **stamp(),
        "quick": args.quick,
        "bounded_states": bounded,
        "typical": typical(150 if args.quick else 600),
        "grid": [cell(nl, nn, count, bounded) for nn in nodes for nl in lines],
    }
    res["load_average_after"] = load_average()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(to_markdown(res))
    print(to_markdown(res))


if __name__ == "__main__":
    main()
