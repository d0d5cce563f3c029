"""Daily feature tables computed from the canonical raw tables, one parquet file per feature view.

Time convention (point-in-time correctness): every source row is assigned to the first day
boundary (00:00 UTC) at or after the moment its information is known, and the feature row
stamped at boundary ``T`` summarises only source rows known at or before ``T``. A shipment's
outcome is known when it is delivered (``event_timestamp + delivery_days``), not when it
ships, so lane and lateness features never see a delivery that has not happened yet.

Rolling windows are computed on a complete day grid in wide form (days × entities), which
keeps everything vectorised: ``rolling(7)`` means the 7 day boundaries ending at ``T``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features import catalog
from features.contracts.feature_tables import validate_features
from features.contracts.raw import validate
from features.progress import stage

WINDOW_SHORT = 7
WINDOW_LONG = 28
#: floor on the sales velocity when computing days of cover, so slow movers do not divide by 0.
MIN_VELOCITY = 0.1

_NEEDED_TABLES = ("nodes", "inventory_snapshots", "demand", "node_days", "allocations", "shipments")
_TIMED_TABLES = ("inventory_snapshots", "demand", "node_days", "allocations", "shipments")


def build_feature_tables(
    raw_dir: Path, out_dir: Path, *, progress: bool = False
) -> dict[str, Path]:
    """Compute, validate and write the four feature tables; returns feature view name → parquet path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with stage(f"read canonical tables from {raw_dir}", progress):
        raw = load_raw(raw_dir)
    days = day_grid(raw)
    builders = {
        catalog.VIEW_NODE_PROFILE: node_profile,
        catalog.VIEW_NODE_OPS: node_ops,
        catalog.VIEW_NODE_SKU_INVENTORY: node_sku_inventory,
        catalog.VIEW_LANE_PERFORMANCE: lane_performance,
    }
    paths: dict[str, Path] = {}
    for view, build in builders.items():
        with stage(f"{view} over {len(days)} days", progress):
            table = validate_features(view, build(raw, days))
            path = out_dir / f"{view}.parquet"
            table.to_parquet(path, index=False)
            paths[view] = path
    return paths


def load_raw(raw_dir: Path) -> dict[str, pd.DataFrame]:
    """Read and validate the canonical tables features depend on (``skus`` is not needed)."""
    frames: dict[str, pd.DataFrame] = {}
    for name in _NEEDED_TABLES:
        path = raw_dir / f"{name}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"canonical table {name!r} missing: expected {path}")
        frames[name] = validate(name, pd.read_parquet(path))
    if frames["nodes"].empty:
        raise ValueError(f"{raw_dir / 'nodes.parquet'} holds no nodes")
    return frames


def day_close(ts: pd.Series) -> pd.Series:
    """The first 00:00 UTC boundary at or after each timestamp: when the row becomes usable."""
    return ts.dt.ceil("D")


def day_grid(raw: dict[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """Every day boundary from the first to the last event in the history (UTC)."""
    closes = [day_close(raw[name]["event_timestamp"]) for name in _TIMED_TABLES if len(raw[name])]
    if not closes:
        raise ValueError("canonical tables hold no timed events; cannot build a day grid")
    start = min(c.min() for c in closes)
    end = max(c.max() for c in closes)
    return pd.date_range(start, end, freq="D", name="event_timestamp")


def _wide(
    frame: pd.DataFrame,
    keys: list[str],
    value: str,
    days: pd.DatetimeIndex,
    columns: pd.Index,
    agg: Literal["sum", "last"],
) -> pd.DataFrame:
    """Pivot a long table (with a ``day`` column) onto the days × entities grid; gaps are NaN."""
    if frame.empty:
        return pd.DataFrame(np.nan, index=days, columns=columns)
    table = frame.pivot_table(index="day", columns=keys, values=value, aggfunc=agg)
    return table.reindex(index=days, columns=columns).astype(float)


def _long(columns: dict[str, pd.DataFrame], days: pd.DatetimeIndex, keys: pd.Index) -> pd.DataFrame:
    """Flatten days × entities frames into one long table with ``event_timestamp`` and key columns."""
    n_days, n_keys = len(days), len(keys)
    out: dict[str, object] = {"event_timestamp": np.repeat(days.to_numpy(), n_keys)}
    key_frame = keys.to_frame(index=False)
    for name in key_frame.columns:
        out[str(name)] = np.tile(key_frame[name].to_numpy(dtype=object), n_days)
    for name, wide in columns.items():
        out[name] = wide.to_numpy().ravel()
    frame = pd.DataFrame(out)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def _empty(keys: list[str], features: tuple[str, ...]) -> pd.DataFrame:
    """A zero-row table with the right columns; the output contract coerces the dtypes."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in keys})
    frame.insert(0, "event_timestamp", pd.Series(dtype="datetime64[ns, UTC]"))
    for name in features:
        frame[name] = pd.Series(dtype=float)
    return frame


def _node_index(raw: dict[str, pd.DataFrame]) -> pd.Index:
    return pd.Index(sorted(raw["nodes"]["node_id"].unique()), name="node_id")


def _daily_capacity(raw: dict[str, pd.DataFrame], days: pd.DatetimeIndex) -> pd.DataFrame:
    """Capacity as last reported by node_days, falling back to the node master before any report."""
    nodes = _node_index(raw)
    node_days = raw["node_days"].assign(day=day_close(raw["node_days"]["event_timestamp"]))
    reported = _wide(node_days, ["node_id"], "capacity", days, nodes, "last").ffill()
    master = raw["nodes"].set_index("node_id")["daily_capacity"].reindex(nodes).astype(float)
    return reported.fillna(master)


def node_profile(raw: dict[str, pd.DataFrame], days: pd.DatetimeIndex) -> pd.DataFrame:
    """Static node attributes plus current capacity, one row per node per day."""
    nodes = _node_index(raw)
    master = raw["nodes"].set_index("node_id").reindex(nodes)
    capacity = _daily_capacity(raw, days)

    def broadcast(values: pd.Series) -> pd.DataFrame:
        return pd.DataFrame(
            np.tile(values.to_numpy(dtype=float), (len(days), 1)), index=days, columns=nodes
        )

    type_code = master["node_type"].map(catalog.NODE_TYPE_CODES)
    frame = _long(
        {
            "node_type_code": broadcast(type_code),
            "node_lat": broadcast(master["lat"]),
            "node_lon": broadcast(master["lon"]),
            "daily_capacity": capacity,
        },
        days,
        nodes,
    )
    return frame.astype({"node_type_code": "int64", "daily_capacity": "int64"})


def _shipments_known(raw: dict[str, pd.DataFrame], days: pd.DatetimeIndex) -> pd.DataFrame:
    """Shipments placed on the day their delivery outcome becomes known; unknown-yet ones dropped."""
    ships = raw["shipments"]
    delivered_at = ships["event_timestamp"] + pd.to_timedelta(ships["delivery_days"], unit="D")
    known = ships.assign(
        day=day_close(delivered_at),
        late=(ships["delivery_days"] > ships["promised_days"]).astype(float),
        one=1.0,
    )
    return known[known["day"] <= days[-1]]


def node_ops(raw: dict[str, pd.DataFrame], days: pd.DatetimeIndex) -> pd.DataFrame:
    """Load, utilisation, lateness and rejection per node, rolling over trailing windows."""
    nodes = _node_index(raw)
    node_days = raw["node_days"].assign(day=day_close(raw["node_days"]["event_timestamp"]))
    orders = _wide(node_days, ["node_id"], "orders", days, nodes, "sum").fillna(0.0)
    backlog = _wide(node_days, ["node_id"], "backlog", days, nodes, "last").ffill().fillna(0.0)
    capacity = _daily_capacity(raw, days)
    orders_7d = orders.rolling(WINDOW_SHORT, min_periods=1).sum()
    capacity_7d = capacity.rolling(WINDOW_SHORT, min_periods=1).sum()
    utilisation = orders_7d / capacity_7d.clip(lower=1.0)

    ships = _shipments_known(raw, days)
    shipped = _wide(ships, ["node_id"], "one", days, nodes, "sum").fillna(0.0)
    late = _wide(ships, ["node_id"], "late", days, nodes, "sum").fillna(0.0)
    shipped_28 = shipped.rolling(WINDOW_LONG, min_periods=1).sum()
    late_28 = late.rolling(WINDOW_LONG, min_periods=1).sum()
    late_rate = (late_28 / shipped_28.where(shipped_28 > 0)).fillna(0.0)

    alloc = raw["allocations"]
    alloc = alloc.assign(
        day=day_close(alloc["event_timestamp"]), one=1.0, rej=alloc["rejected"].astype(float)
    )
    sent = _wide(alloc, ["node_id"], "one", days, nodes, "sum").fillna(0.0)
    rejected = _wide(alloc, ["node_id"], "rej", days, nodes, "sum").fillna(0.0)
    sent_28 = sent.rolling(WINDOW_LONG, min_periods=1).sum()
    rejected_28 = rejected.rolling(WINDOW_LONG, min_periods=1).sum()
    rejection_rate = (rejected_28 / sent_28.where(sent_28 > 0)).fillna(0.0)

    frame = _long(
        {
            "backlog": backlog,
            "utilisation_7d": utilisation,
            "orders_7d": orders_7d,
            "late_ship_rate_28d": late_rate,
            "rejection_rate_28d": rejection_rate,
        },
        days,
        nodes,
    )
    return frame.astype({"backlog": "int64", "orders_7d": "int64"})


def days_of_cover(on_hand: Any, velocity_7d: Any) -> Any:
    """Days the stock lasts at the 7-day pace (the pace floored so a slow SKU stays finite)."""
    return on_hand / np.maximum(velocity_7d, MIN_VELOCITY)


def node_sku_inventory(raw: dict[str, pd.DataFrame], days: pd.DatetimeIndex) -> pd.DataFrame:
    """Stock position and demand pace per (node, sku), from the first recorded snapshot onwards.

    At a day's close the canonical books hold no reservations (a snapshot is the recorded
    on-hand), so ``reserved`` is 0 and ``available`` the on-hand; during the day the ledger's
    live values are pushed over them (``features.push``). ``rejections_7d`` counts the
    orders whose allocation of the SKU the node rejected in the trailing 7 days.
    """
    snaps = raw["inventory_snapshots"].assign(
        day=day_close(raw["inventory_snapshots"]["event_timestamp"])
    )
    demand = raw["demand"].assign(day=day_close(raw["demand"]["event_timestamp"]))
    pair_frame = (
        pd.concat([snaps[["node_id", "sku"]], demand[["node_id", "sku"]]])
        .drop_duplicates()
        .sort_values(["node_id", "sku"])
    )
    pairs = pd.MultiIndex.from_frame(pair_frame)
    keys = ["node_id", "sku"]
    if pairs.empty:
        return _empty(["node_id", "sku"], catalog.NODE_SKU_INVENTORY)

    on_hand_seen = _wide(snaps, keys, "on_hand", days, pairs, "last")
    count_seen = _wide(snaps, keys, "days_since_count", days, pairs, "last")
    units = _wide(demand, keys, "units", days, pairs, "sum")
    allocs = raw["allocations"]
    rejected = (
        allocs[allocs["rejected"].astype(bool)]
        .drop_duplicates(["order_id", "node_id", "sku"])
        .assign(day=lambda f: day_close(f["event_timestamp"]), n=1)
    )
    rejections = _wide(rejected, keys, "n", days, pairs, "sum").fillna(0.0)
    rejections_7d = rejections.rolling(WINDOW_SHORT, min_periods=1).sum()

    seen = on_hand_seen.notna()
    on_hand = on_hand_seen.ffill()
    day_no = np.arange(len(days), dtype=float)[:, None]
    last_seen_day = pd.DataFrame(
        np.where(seen.to_numpy(), day_no, np.nan), index=days, columns=pairs
    ).ffill()
    days_since_count = count_seen.ffill() + (day_no - last_seen_day)

    active = (seen | units.notna()).cummax()
    daily_units = units.fillna(0.0).where(active)
    velocity_7d = daily_units.rolling(WINDOW_SHORT, min_periods=1).mean()
    velocity_28d = daily_units.rolling(WINDOW_LONG, min_periods=1).mean()
    cover = days_of_cover(on_hand, velocity_7d)
    out_of_stock = (on_hand == 0).astype(float).where(on_hand.notna())
    stockout_days = out_of_stock.rolling(WINDOW_LONG, min_periods=1).sum()

    frame = _long(
        {
            "on_hand": on_hand,
            "sales_velocity_7d": velocity_7d,
            "sales_velocity_28d": velocity_28d,
            "days_of_cover": cover,
            "stockout_days_28d": stockout_days,
            "days_since_count": days_since_count,
            "available": on_hand,
            "reserved": on_hand * 0.0,
            "hours_since_count": days_since_count * 24.0,
            "rejections_7d": rejections_7d,
        },
        days,
        pairs,
    )
    frame = frame[frame["on_hand"].notna()].reset_index(drop=True)
    ints = ("on_hand", "stockout_days_28d", "days_since_count", "available", "reserved")
    return frame.astype({**dict.fromkeys(ints, "int64"), "rejections_7d": "int64"})


def lane_performance(raw: dict[str, pd.DataFrame], days: pd.DatetimeIndex) -> pd.DataFrame:
    """Transit quantiles and lateness per (node, dest_region) over the trailing 28 days.

    Each known shipment is replicated onto the 28 day boundaries whose window contains it,
    so a groupby per (lane, day) sees exactly its window. From its first shipment on, a lane
    has a row every day: a day whose window is empty gets the priors the training frame uses
    for a lane without data (``lane_shipments_28d == 0``), so a refresh re-dates every lane
    the service may read instead of leaving its last busy day's row in the online store.
    """
    ships = _shipments_known(raw, days)
    columns = ["event_timestamp", "node_id", "dest_region", *catalog.LANE_PERFORMANCE]
    if ships.empty:
        return _empty(["node_id", "dest_region"], catalog.LANE_PERFORMANCE)
    base = ships[["node_id", "dest_region", "day", "delivery_days", "late"]].reset_index(drop=True)
    spread = base.loc[base.index.repeat(WINDOW_LONG)].reset_index(drop=True)
    offsets = np.tile(np.arange(WINDOW_LONG), len(base))
    spread["event_timestamp"] = spread["day"] + pd.to_timedelta(offsets, unit="D")
    spread = spread[spread["event_timestamp"] <= days[-1]]
    grouped = spread.groupby(["node_id", "dest_region", "event_timestamp"], sort=True)
    transit = grouped["delivery_days"]
    frame = pd.DataFrame(
        {
            "lane_transit_p50_28d": transit.median(),
            "lane_transit_p90_28d": transit.quantile(0.9),
            "lane_late_rate_28d": grouped["late"].mean(),
            "lane_shipments_28d": transit.size(),
        }
    )
    first = frame.reset_index().groupby(["node_id", "dest_region"])["event_timestamp"].min()
    grid = pd.MultiIndex.from_tuples(
        [
            (*lane, day)  # type: ignore[misc]
            for lane, start in first.items()
            for day in days[days >= start]
        ],
        names=["node_id", "dest_region", "event_timestamp"],
    )
    priors = {c: catalog.FEATURE_DEFAULTS[c] for c in catalog.LANE_PERFORMANCE}
    dense = frame.reindex(grid).fillna(priors).reset_index()
    return dense[columns].astype({"lane_shipments_28d": "int64"})
