"""Live node×SKU features through Feast's push path.

The daily table knows the stock recorded at each day's close; the inventory ledger knows it
now. ``live_inventory_frame`` turns ledger stock into rows of the ``node_sku_inventory`` view
(on-hand and count age live, demand pace carried from the last batch row) and
``push_live_inventory`` writes them with ``FeatureStore.push`` to the online store, so the
service's snapshot follows the ledger within seconds instead of a day.
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
from features.progress import quiet_feast
from features.repo.sources import NODE_SKU_PUSH

#: Features carried from the last batch row: they summarise days of demand, not the moment.
CARRIED = ("sales_velocity_7d", "sales_velocity_28d", "stockout_days_28d")


@dataclass(frozen=True, slots=True)
class LiveStock:
    """The ledger's position of one node×SKU."""

    node_id: str
    sku: str
    on_hand: int
    last_count_at: datetime | None


def live_inventory_frame(
    stock: Sequence[LiveStock],
    carried: Mapping[tuple[str, str], Mapping[str, float]],
    now: datetime,
) -> pd.DataFrame:
    """Rows of the node×SKU view at ``now``; ``carried`` is keyed by (node_id, SKU upper-case).

    A pair without a batch row starts with no demand (pace 0, no stock-out days)."""
    rows = []
    for s in stock:
        prior = carried.get((s.node_id, s.sku.upper()), {})
        v7 = float(prior.get("sales_velocity_7d", 0.0))
        if s.last_count_at is not None:
            since_count = max(0, int((now - s.last_count_at).total_seconds() // 86400))
        else:
            since_count = int(prior.get("days_since_count", 0))
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
            }
        )
    columns = ["node_id", "sku", "event_timestamp", *catalog.NODE_SKU_INVENTORY]
    frame = pd.DataFrame(rows, columns=columns)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame.astype(
        {"on_hand": "int64", "stockout_days_28d": "int64", "days_since_count": "int64"}
    )


def push_live_inventory(store: FeatureStore, frame: pd.DataFrame) -> int:
    """Write the rows to the online store through the view's PushSource; returns rows pushed."""
    if frame.empty:
        return 0
    with quiet_feast(True):
        store.push(NODE_SKU_PUSH, frame, to=PushMode.ONLINE)
    return len(frame)
