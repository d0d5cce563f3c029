"""Live node×SKU features through Feast's push path.

The daily table knows the stock recorded at each day's close; the inventory ledger knows it
now. ``live_inventory_frame`` turns ledger stock into rows of the ``node_sku_inventory`` view
(on-hand and count age live, demand pace carried from the last batch row) and
``push_live_inventory`` writes them with ``FeatureStore.push`` to the online store, so the
service's snapshot follows the ledger within seconds instead of a day.

``carried_frames`` + ``write_carried`` re-date the node and lane rows (values unchanged) when
a service starts on features older than its staleness bound and nothing has happened since
they were computed: they are still the latest values the history gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode

from features import catalog
from features.compute import days_of_cover
from features.online import OnlineSnapshot
from features.progress import quiet_feast
from features.repo.sources import NODE_SKU_PUSH
from features.repo.views import INT_FEATURES

#: Features carried from the last batch row: they summarise days of demand, not the moment.
CARRIED = ("sales_velocity_7d", "sales_velocity_28d", "stockout_days_28d")


@dataclass(frozen=True, slots=True)
class LiveStock:
    """The ledger's position of one node×SKU; ``new_rejections`` counts the rejections of
    it the ledger recorded since the row was last pushed (or computed)."""

    node_id: str
    sku: str
    on_hand: int
    last_count_at: datetime | None
    reserved: int = 0
    new_rejections: int = 0


def live_inventory_frame(
    stock: Sequence[LiveStock],
    carried: Mapping[tuple[str, str], Mapping[str, float]],
    now: datetime,
) -> pd.DataFrame:
    """Rows of the node×SKU view at ``now``; ``carried`` is keyed by (node_id, SKU upper-case).

    Stock, reservations and count age come from the ledger; demand pace and stock-out days
    from the last row (batch or pushed). ``rejections_7d`` is the last row's count plus the
    ledger's new rejections: a rejection leaves the 7-day window at the next daily refresh,
    not to the hour. A pair without a row starts with no demand and no rejections."""
    rows = []
    for s in stock:
        prior = carried.get((s.node_id, s.sku.upper()), {})
        v7 = float(prior.get("sales_velocity_7d", 0.0))
        if s.last_count_at is not None:
            hours = max(0.0, (now - s.last_count_at).total_seconds() / 3600.0)
            since_count = int(hours // 24)
        else:
            since_count = int(prior.get("days_since_count", 0))
            hours = float(prior.get("hours_since_count", since_count * 24.0))
        rows.append(
            {
                "node_id": s.node_id,
                "sku": s.sku,
                "event_timestamp": now,
                "on_hand": int(s.on_hand),
                "sales_velocity_7d": v7,
                "sales_velocity_28d": float(prior.get("sales_velocity_28d", 0.0)),
                "days_of_cover": float(days_of_cover(float(s.on_hand), v7)),
                "stockout_days_28d": int(prior.get("stockout_days_28d", 0)),
                "days_since_count": since_count,
                "available": int(s.on_hand) - int(s.reserved),
                "reserved": int(s.reserved),
                "hours_since_count": round(hours, 3),
                "rejections_7d": int(prior.get("rejections_7d", 0)) + int(s.new_rejections),
            }
        )
    columns = ["node_id", "sku", "event_timestamp", *catalog.NODE_SKU_INVENTORY]
    frame = pd.DataFrame(rows, columns=columns)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    ints = [c for c in catalog.NODE_SKU_INVENTORY if c in INT_FEATURES]
    return frame.astype(dict.fromkeys(ints, "int64"))


def push_live_inventory(store: FeatureStore, frame: pd.DataFrame) -> int:
    """Write the rows to the online store through the view's PushSource; returns rows pushed."""
    if frame.empty:
        return 0
    with quiet_feast(True):
        store.push(NODE_SKU_PUSH, frame, to=PushMode.ONLINE)
    return len(frame)


def carried_frames(online: OnlineSnapshot, now: datetime) -> dict[str, pd.DataFrame]:
    """Node profile, node ops and lane rows of ``online`` with their values, stamped ``now``
    (an entity missing a feature of a view is left out of that view)."""
    node: dict[object, dict[str, float]] = {k: v for k, v in online.node.items()}
    lane: dict[object, dict[str, float]] = {k: v for k, v in online.lane.items()}
    specs: list[tuple[str, tuple[str, ...], dict[object, dict[str, float]], list[str]]] = [
        (catalog.VIEW_NODE_PROFILE, catalog.NODE_PROFILE, node, ["node_id"]),
        (catalog.VIEW_NODE_OPS, catalog.NODE_OPS, node, ["node_id"]),
        (catalog.VIEW_LANE_PERFORMANCE, catalog.LANE_PERFORMANCE, lane, ["node_id", "dest_region"]),
    ]
    frames: dict[str, pd.DataFrame] = {}
    for view, features, rows, keys in specs:
        records = []
        for key, values in rows.items():
            if any(values.get(f) is None for f in features):
                continue
            parts = key if isinstance(key, tuple) else (key,)
            records.append(
                {**dict(zip(keys, parts, strict=True)), **{f: values[f] for f in features}}
            )
        frame = pd.DataFrame(records, columns=[*keys, *features])
        frame.insert(0, "event_timestamp", pd.Timestamp(now).tz_convert("UTC"))
        frames[view] = frame.astype({f: "int64" for f in features if f in INT_FEATURES})
    return frames


def write_carried(store: FeatureStore, frames: Mapping[str, pd.DataFrame]) -> int:
    """Write the carried rows to the online store; returns rows written."""
    n = 0
    with quiet_feast(True):
        for view, frame in frames.items():
            if len(frame):
                store.write_to_online_store(view, frame)
                n += len(frame)
    return n
