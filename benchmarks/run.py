"""Run the benchmark suite (``make bench`` = quick, ``make bench-full`` = full sizes).

Sections run in order; each writes ``benchmarks/results/<section>.json`` as soon as it
finishes, with the machine, the time and the load average before and after it. A full run
is resumable: ``--resume`` (what ``make bench-full`` passes) skips the sections an
unfinished full run already completed. ``summary.json`` and ``summary.md`` are rebuilt from
the section files after every section, so an interrupted run still leaves what it measured.

    python -m benchmarks.run [--quick] [--resume] [--only decision http ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import load_average, machine, shown_path

RESULTS = Path("benchmarks/results")
STATE = RESULTS / "run-state.json"
SCALES = ("small", "medium", "large")


def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def demo_home(path: Path, scale: str = "small") -> Path:
    """A built demo world at ``path`` (built once with ``routecast demo``)."""
    if not (path / "mlflow.db").exists():
        log(f"building the {scale} demo world in {path} (once)")
        import os

        subprocess.run(
            [sys.executable, "-m", "serving.cli", "demo"],
            check=True,
            env={**os.environ, "ROUTECAST_HOME": str(path), "ROUTECAST_SCALE": scale},
        )
    return path


def sections(home: Path, work: Path, quick: bool) -> dict[str, Callable[[], dict[str, Any]]]:
    def startup() -> dict[str, Any]:
        from benchmarks.bench_startup import measure

        return measure(home, starts=2)

    def decision() -> dict[str, Any]:
        from benchmarks.bench_decision import markdown, plot, run

        res = run(home, work, quick, [(5, 200)] if quick else [(1, 200), (5, 200), (12, 200)])
        plot(res, RESULTS / "decision_latency.png")
        (RESULTS / "decision.md").write_text(markdown(res))
        return res

    def http() -> dict[str, Any]:
        from benchmarks.bench_http import run

        return run(home, quick)

    def reservations() -> dict[str, Any]:
        from benchmarks.bench_reservations import run

        return run(quick)

    out: dict[str, Callable[[], dict[str, Any]]] = {
        "startup": startup,
        "decision": decision,
        "http": http,
        "reservations": reservations,
    }

    def route_medium() -> dict[str, Any]:
        """The whole decision on the medium world's network (``bench_route``): the memory
        section's medium world (the scale's network, a short history, the small demo's
        champions), so the full run builds no full medium demo."""
        from benchmarks.bench_memory import memory_world
        from benchmarks.bench_route import run
        from benchmarks.machine import stamp

        world = memory_world(home, work / "memory-medium", "medium")
        return {
            **stamp(),
            "home": shown_path(world),
            "world": "medium network, short history, the small demo's champions",
            **run(world, 2000, shadow_orders=200),
        }

    def allocator() -> dict[str, Any]:
        """The pure allocator grid (``bench_allocator``, writes allocator.{md,json})."""
        from benchmarks import bench_allocator
        from benchmarks.machine import stamp

        argv = sys.argv
        sys.argv = ["bench_allocator"]
        try:
            bench_allocator.main()
        finally:
            sys.argv = argv
        return {**stamp(), "written": ["allocator.md", "allocator.json"]}

    def memory(scale: str) -> dict[str, Any]:
        from benchmarks.bench_memory import measure

        return measure(home, work, scale)

    for scale in SCALES[:1] if quick else SCALES:
        out[f"memory_{scale}"] = lambda scale=scale: memory(scale)  # type: ignore[misc]
    if not quick:
        out["route_medium"] = route_medium
        out["allocator"] = allocator
    return out


def _read(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _best(runs: list[dict[str, Any]], path: str, workers: int = 2) -> dict[str, Any] | None:
    """The highest-throughput run of ``path`` with ``workers`` whose answers were all 2xx
    (saturation or fixed rate, whichever served more)."""
    ok = [
        r for r in runs if r["path"] == path and r["workers"] == workers and r["socket_errors"] == 0
    ]
    return max(ok, key=lambda r: r["ok_rps"], default=None)


def summarise() -> dict[str, Any]:
    """The summary keys from whatever section files exist (missing ones are null)."""
    s: dict[str, Any] = {}
    dec = _read("decision") or {}
    cell = {(c["lines"], c["nodes"]): c for c in dec.get("routecast", [])}
    straight = {(c["lines"], c["nodes"]): c for c in dec.get("straightforward", [])}
    s["decision_5x200_p50_ms"] = cell.get((5, 200), {}).get("p50_ms")
    s["decision_5x200_p99_ms"] = cell.get((5, 200), {}).get("p99_ms")
    s["decision_12x200_p99_ms"] = cell.get((12, 200), {}).get("p99_ms")
    s["straightforward_5x200_p50_ms"] = straight.get((5, 200), {}).get("p50_ms")
    s["speedup_vs_straightforward"] = straight.get((5, 200), {}).get("speedup_p50")
    # The same cells with the score memo off (every prediction computed): the warm keys above
    # reuse predictions made against the same feature rows, so both are reported.
    cold = {(c["lines"], c["nodes"]): c for c in dec.get("routecast_cold") or []}
    s["decision_5x200_cold_p50_ms"] = cold.get((5, 200), {}).get("p50_ms")
    s["decision_5x200_cold_p99_ms"] = cold.get((5, 200), {}).get("p99_ms")
    s["decision_12x200_cold_p99_ms"] = cold.get((12, 200), {}).get("p99_ms")
    theirs, ours = s["straightforward_5x200_p50_ms"], s["decision_5x200_cold_p50_ms"]
    s["speedup_vs_straightforward_cold"] = round(theirs / ours, 1) if theirs and ours else None
    http = _read("http") or {}
    for key, path in (("route", "/v1/route"), ("orders", "/v1/orders")):
        best = _best(http.get("runs", []), path)
        s[f"http_{key}_rps"] = best["ok_rps"] if best else None
        s[f"http_{key}_p99_ms"] = best["p99_ms"] if best else None
    res = _read("reservations") or {}
    s["pg_reservations_per_s"] = res.get("postgresql", {}).get("reservations_per_second")
    s["sqlite_reservations_per_s"] = res.get("sqlite", {}).get("reservations_per_second")
    oversold = [
        res.get(b, {}).get("oversold_units") for b in ("sqlite", "postgresql") if b in res
    ] + [c.get("oversold_units") for c in http.get("ledger_after_orders", {}).values()]
    known = [o for o in oversold if o is not None]
    s["oversold"] = sum(known) if known else None
    s["ready_seconds"] = (_read("startup") or {}).get("ready_seconds")
    s["rss_mb_large"] = (_read("memory_large") or {}).get("rss_mb_after_200_orders")
    sources = {}
    names = ("startup", "decision", "http", "reservations", *(f"memory_{x}" for x in SCALES))
    for name in (*names, "route_medium", "allocator"):
        r = _read(name)
        if r:
            sources[name] = {
                "measured_at": r.get("measured_at"),
                "load_average": r.get("load_average"),
                "quick": r.get("quick", False),
            }
    s["sections"] = sources
    s["machine"] = machine()
    return s


def write_summary() -> dict[str, Any]:
    s = summarise()
    (RESULTS / "summary.json").write_text(json.dumps(s, indent=2) + "\n")
    lines = [
        "# Benchmark summary",
        "",
        f"Machine: {s['machine']['cpu']}, {s['machine']['cores']} cores, "
        f"{s['machine']['memory']}, Python {s['machine']['python']}.",
        "",
        "Each section notes when it ran, the load average (1, 5, 15 min) at its start and "
        "whether it was the quick form. Figures taken under a load above the core count are "
        "contended, not representative.",
        "",
        "| section | measured at | load average | quick |",
        "|---|---|---|---|",
    ]
    for name, src in s["sections"].items():
        lines.append(f"| {name} | {src['measured_at']} | {src['load_average']} | {src['quick']} |")
    lines += ["", "| key | value |", "|---|---|"]
    for key, value in s.items():
        if key not in ("sections", "machine"):
            lines.append(f"| `{key}` | {value} |")
    dec = _read("decision")
    if dec:
        lines += [
            "",
            "## In-process decision (generated network)",
            "",
            "| lines | nodes | p50 ms | p99 ms | orders |",
            "|---|---|---|---|---|",
        ]
        for c in dec["routecast"]:
            lines.append(
                f"| {c['lines']} | {c['nodes']} | {c['p50_ms']} | {c['p99_ms']} | {c['orders']} |"
            )
        for c in dec.get("straightforward", []):
            lines.append(
                f"\nStraightforward stack {c['lines']}×{c['nodes']}: p50 {c['p50_ms']} ms, "
                f"p99 {c['p99_ms']} ms ({c['speedup_p50']}× routecast's p50)."
            )
        lines.append("\n![latency against nodes × lines](decision_latency.png)")
    http = _read("http")
    if http:
        lines += [
            "",
            "## HTTP (wrk over loopback)",
            "",
            "Server CPU is all workers' user + system time over the run: cores busy near the "
            "core count means the run was bound by CPU.",
            "",
            "| workers | path | load | target rps | achieved rps | 2xx rps | p50 ms | p99 ms "
            "| p99.9 ms | statuses | socket errors | server CPU ms/req | cores busy |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in http["runs"]:
            lines.append(
                f"| {r['workers']} | {r['path']} | {r['load']} ({r['connections']} conn) | "
                f"{r['target_rps'] or '-'} | {r['rps']} | {r['ok_rps']} | {r['p50_ms']} | "
                f"{r['p99_ms']} | {r['p999_ms']} | {r['statuses']} | {r['socket_errors']} | "
                f"{r.get('server_cpu_ms_per_request', '-')} | {r.get('server_cores_busy', '-')} |"
            )
        lines.append(f"\nLedger after the orders runs: {http['ledger_after_orders']}")
    start = _read("startup")
    if start:
        lines += [
            "",
            "## Start-up (uvicorn, 1 worker)",
            "",
            "| start | listening s | ready s | first answer s | CPU s to ready | RSS MB |",
            "|---|---|---|---|---|---|",
        ]
        for r in start["starts"]:
            lines.append(
                f"| {r['start']} | {r['listening_s']} | {r['ready_s']} | {r['first_answer_s']} "
                f"| {r['cpu_s_ready']} | {r['rss_mb_ready']} |"
            )
    res = _read("reservations")
    if res:
        lines += ["", "## Reservations (16 clients, hot SKUs)", ""]
        for backend in ("sqlite", "postgresql"):
            r = res.get(backend) or {}
            if "reservations_per_second" in r:
                lines.append(
                    f"- {backend}: {r['reservations_per_second']} reservations/s, "
                    f"{r.get('oversold_units')} units oversold, {r.get('problem_count')} problems"
                )
            elif r:
                lines.append(f"- {backend}: {r}")
    mems = [m for m in (_read(f"memory_{x}") for x in SCALES) if m]
    if mems:
        lines += [
            "",
            "## Serving memory (1 worker)",
            "",
            "| world | nodes | SKUs | history | RSS MB ready | RSS MB after 200 orders |",
            "|---|---|---|---|---|---|",
        ]
        for m in mems:
            lines.append(
                f"| {m['scale']} | {m.get('nodes', '-')} | {m.get('skus', '-')} | "
                f"{m.get('history_days') or 'full'} | {m['rss_mb_ready']} | "
                f"{m['rss_mb_after_200_orders']} |"
            )
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue an unfinished run")
    ap.add_argument("--only", nargs="*", default=None, help="sections to run")
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    ap.add_argument("--work", type=Path, default=Path(".routecast/bench"))
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    home = demo_home(args.home.resolve())
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    state = json.loads(STATE.read_text()) if STATE.exists() else {}
    if not (args.resume and state.get("quick") == args.quick and not state.get("finished")):
        state = {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "completed": [],
            "failed": {},
            "finished": False,
        }
    for name, section in sections(home, work, args.quick).items():
        if args.only and name not in args.only:
            continue
        if name in state["completed"]:
            log(f"== {name}: done in this run already, skipped")
            continue
        before = load_average()
        log(f"== {name} (load average {before})")
        t0 = time.perf_counter()
        try:
            result = section()
        except Exception:
            state["failed"][name] = traceback.format_exc()[-2000:]
            log(f"{name} failed:\n{state['failed'][name]}")
            STATE.write_text(json.dumps(state, indent=2) + "\n")
            continue
        result["quick"] = args.quick
        result["section_seconds"] = round(time.perf_counter() - t0, 1)
        result["load_average_before"] = before
        result["load_average_after"] = load_average()
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        state["completed"].append(name)
        state["failed"].pop(name, None)
        STATE.write_text(json.dumps(state, indent=2) + "\n")
        write_summary()
    state["finished"] = not state["failed"] and not args.only
    STATE.write_text(json.dumps(state, indent=2) + "\n")
    print(json.dumps(write_summary(), indent=2))
    if state["failed"]:
        sys.exit(f"sections failed: {sorted(state['failed'])} (rerun with --resume)")


if __name__ == "__main__":
    main()
