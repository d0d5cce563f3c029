"""A tiny canonical world (3 nodes, 3 SKUs, ~6 weeks) written as validated parquet tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contracts.raw import validate
from tests.support.services import require_redis

NODES = ("N1", "N2", "N3")
SKUS = ("A", "B", "C")
REGIONS = ("east", "west")
N_DAYS = 42


def history_start() -> pd.Timestamp:
    """Relative to today, so materialisation (clipped to now) always covers the whole history."""
    return pd.Timestamp.now(tz="UTC").floor("D") - pd.Timedelta(days=N_DAYS + 3)


def make_raw(raw_dir: Path, *, seed: int = 3) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    start = history_start()
    days = pd.date_range(start, periods=N_DAYS, freq="D")
    end_of_day = days + pd.Timedelta(hours=23)
    nodes = pd.DataFrame(
        {
            "node_id": list(NODES),
            "node_type": ["dc", "store", "3pl"],
            "name": ["Main DC", "Store 1", "3PL West"],
            "city": ["Newark", "Boston", "Reno"],
            "state": ["NJ", "MA", "NV"],
            "postal_code": ["07101", "02108", "89501"],
            "lat": [40.7357, 42.3588, 39.5296],
            "lon": [-74.1724, -71.0707, -119.8138],
            "timezone": ["America/New_York", "America/New_York", "America/Los_Angeles"],
            "priority": [1, 2, 3],
            "enabled": [True, True, True],
            "daily_capacity": [100, 20, 50],
            "handling_cost": [1.0, 2.5, 1.5],
            "ships_groups": ["all", "all", "all"],
        }
    )
    n_skus = len(SKUS)
    skus = pd.DataFrame(
        {
            "sku": list(SKUS),
            "product_group": ["g" if i % 3 else "h" for i in range(n_skus)],
            "weight_kg": 0.5 + np.arange(n_skus) % 4,
            "price": 5.0 + np.arange(n_skus) % 20,
        }
    )
    grid = pd.MultiIndex.from_product(
        [end_of_day, NODES, SKUS], names=["event_timestamp", "node_id", "sku"]
    )
    inv = grid.to_frame(index=False)
    inv["on_hand"] = rng.integers(0, 30, len(inv)) * (rng.random(len(inv)) > 0.15)
    inv["days_since_count"] = rng.integers(0, 10, len(inv))
    demand = grid.to_frame(index=False)
    demand["units"] = rng.poisson(3, len(demand))
    nd = pd.MultiIndex.from_product(
        [end_of_day, NODES], names=["event_timestamp", "node_id"]
    ).to_frame(index=False)
    nd["capacity"] = nd["node_id"].map({"N1": 100, "N2": 20, "N3": 50})
    nd.loc[nd["event_timestamp"] >= end_of_day[20], "capacity"] += 10
    nd["orders"] = rng.integers(0, 25, len(nd))
    nd["backlog"] = rng.integers(0, 5, len(nd))
    n_alloc = 400
    alloc_ts = start + pd.to_timedelta(rng.uniform(0, N_DAYS * 24, n_alloc), unit="h")
    regions = rng.choice(REGIONS, n_alloc)
    allocations = pd.DataFrame(
        {
            "event_timestamp": alloc_ts,
            "allocation_id": [f"a{i}" for i in range(n_alloc)],
            "order_id": [f"o{i}" for i in range(n_alloc)],
            "node_id": rng.choice(NODES, n_alloc),
            "sku": rng.choice(SKUS, n_alloc),
            "qty": rng.integers(1, 4, n_alloc),
            "dest_region": regions,
            "dest_lat": np.where(regions == "east", 40.0, 37.0) + rng.normal(0, 0.5, n_alloc),
            "dest_lon": np.where(regions == "east", -75.0, -121.0) + rng.normal(0, 0.5, n_alloc),
            "rejected": rng.random(n_alloc) < 0.1,
            "reason": None,
        }
    )
    allocations.loc[allocations["rejected"], "reason"] = "no_stock"
    shipped = allocations[~allocations["rejected"]].reset_index(drop=True)
    shipments = pd.DataFrame(
        {
            "event_timestamp": shipped["event_timestamp"] + pd.Timedelta(hours=6),
            "shipment_id": [f"s{i}" for i in range(len(shipped))],
            "order_id": shipped["order_id"],
            "node_id": shipped["node_id"],
            "dest_region": shipped["dest_region"],
            "dest_lat": shipped["dest_lat"],
            "dest_lon": shipped["dest_lon"],
            "carrier": "ups",
            "delivery_days": rng.integers(1, 7, len(shipped)).astype(float),
            "promised_days": 3.0,
        }
    )
    tables = {
        "nodes": nodes,
        "skus": skus,
        "inventory_snapshots": inv,
        "demand": demand,
        "node_days": nd,
        "allocations": allocations,
        "shipments": shipments,
    }
    raw_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, frame in tables.items():
        out[name] = validate(name, frame)
        out[name].to_parquet(raw_dir / f"{name}.parquet", index=False)
    return out


@pytest.fixture(scope="session")
def raw_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pd.DataFrame]]:
    raw_dir = tmp_path_factory.mktemp("raw")
    return raw_dir, make_raw(raw_dir)


@pytest.fixture(scope="session")
def feature_tables(
    raw_world: tuple[Path, dict[str, pd.DataFrame]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Path]]:
    from features.compute import build_feature_tables

    out = tmp_path_factory.mktemp("features")
    return out, build_feature_tables(raw_world[0], out)


@pytest.fixture
def redis_project() -> Iterator[str]:
    """A unique Feast project name (the Redis key suffix); skips when Redis is down unless CI."""
    require_redis()
    yield f"rc_test_{uuid.uuid4().hex[:10]}"
