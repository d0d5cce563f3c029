"""Serving memory on the ``small``, ``medium`` and ``large`` networks: the resident memory of
one worker once ready and after 200 routed orders.

What a worker holds grows with the network (nodes, SKUs, stocked node×SKU pairs, their
feature rows, the lanes), not with the days of history behind it or with how its models were
trained. So the medium and large worlds are the scale's own simulated network with a short
history (``HISTORY_DAYS`` recorded days after the burn-in), their features computed and
materialised as ``routecast demo`` does, served with the small demo's champions (same
features, same boosters): minutes to build instead of the hours a full year of the large
world takes. The small world is the demo itself.

    python -m benchmarks.bench_memory --scale large [--home .routecast] [--work .routecast/bench]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.machine import shown_path, stamp

#: Recorded days of a memory world (the scale's burn-in is simulated before them).
HISTORY_DAYS = 7
WORLD_VERSION = "1"


def memory_world(demo: Path, target: Path, scale: str, seed: int = 7) -> Path:
    """The scale's network with a short history and the demo's champions (built once)."""
    from features.compute import build_feature_tables
    from features.store import apply_definitions, materialize, open_feature_store
    from serving.settings import Settings
    from simulation import generate_world

    done = target / "memory-world.json"
    if done.exists() and json.loads(done.read_text()).get("version") == WORLD_VERSION:
        return target
    if target.exists():
        shutil.rmtree(target)
    settings = Settings(home=target, scale=scale, seed=seed)  # type: ignore[arg-type]
    end = datetime.now(UTC)
    t0 = time.perf_counter()
    generate_world(settings.data_dir, scale=scale, seed=seed, end=end, days=HISTORY_DAYS)  # type: ignore[arg-type]
    build_feature_tables(settings.raw_dir, settings.feature_dir)
    store = open_feature_store(settings)
    apply_definitions(store, settings.feature_dir)
    materialize(store, end)
    # the demo's registry (its artifacts stay in the demo home) and its local model cache
    shutil.copy(demo / "mlflow.db", target / "mlflow.db")
    if (demo / "cache" / "models").exists():
        shutil.copytree(demo / "cache" / "models", target / "cache" / "models")
    done.write_text(
        json.dumps(
            {
                "version": WORLD_VERSION,
                "scale": scale,
                "history_days": HISTORY_DAYS,
                "build_seconds": round(time.perf_counter() - t0, 1),
            }
        )
    )
    return target


def measure(demo: Path, work: Path, scale: str) -> dict[str, Any]:
    from benchmarks.bench_startup import rss_mb, start_server, stop_server, warm_rss

    t0 = time.perf_counter()
    world = demo if scale == "small" else memory_world(demo, work / f"memory-{scale}", scale)
    built = round(time.perf_counter() - t0, 1)
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        server = start_server(world, f"sqlite:///{tmp}/ledger.db")
        try:
            ready_rss = rss_mb(server.process.pid)
            warm = warm_rss(server)
        finally:
            stop_server(server)
    raw = world / "data" / "raw"
    import pyarrow.parquet as pq

    nodes = pq.ParquetFile(raw / "nodes.parquet").metadata.num_rows
    skus = pq.ParquetFile(raw / "skus.parquet").metadata.num_rows
    return {
        **stamp(),
        "scale": scale,
        "home": shown_path(world),
        "nodes": nodes,
        "skus": skus,
        "history_days": None if scale == "small" else HISTORY_DAYS,
        "models": "the world's own" if scale == "small" else "the small demo's champions",
        "build_seconds": built,
        "ready_seconds": server.ready_s,
        "rss_mb_ready": ready_rss,
        "rss_mb_after_200_orders": warm,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("small", "medium", "large"), default="small")
    ap.add_argument("--home", type=Path, default=Path(".routecast"))
    ap.add_argument("--work", type=Path, default=Path(".routecast/bench"))
    args = ap.parse_args()
    print(json.dumps(measure(args.home.resolve(), args.work.resolve(), args.scale), indent=2))


if __name__ == "__main__":
    main()
