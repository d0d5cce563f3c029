"""First load of the ledger from the canonical tables: nodes and the newest recorded on-hand.

Runs once per empty ledger; afterwards the ledger is the truth and changes only through
orders and inventory adjustments.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from serving.ledger import InitialStock, Ledger, NodeRecord


def seed_ledger(ledger: Ledger, raw_dir: Path) -> int:
    """Load nodes and stock if the ledger holds no nodes yet; returns stock rows loaded."""
    if ledger.nodes() or not (raw_dir / "nodes.parquet").exists():
        return 0
    nodes = pd.read_parquet(raw_dir / "nodes.parquet")
    ledger.upsert_nodes(
        [
            NodeRecord(
                node_id=str(r["node_id"]),
                node_type=str(r["node_type"]),
                lat=float(r["lat"]),
                lon=float(r["lon"]),
                enabled=bool(r["enabled"]),
                priority=int(r["priority"]),
                timezone=str(r["timezone"]),
                daily_capacity=int(r["daily_capacity"]),
            )
            for r in nodes.to_dict(orient="records")
        ]
    )
    inv = pd.read_parquet(raw_dir / "inventory_snapshots.parquet")
    latest = inv[inv["event_timestamp"] == inv["event_timestamp"].max()]
    event_time = latest["event_timestamp"].max().to_pydatetime()
    rows = [
        InitialStock(node_id=str(n), sku=str(s), on_hand=int(q))
        for n, s, q in zip(latest["node_id"], latest["sku"], latest["on_hand"], strict=True)
    ]
    return ledger.load_stock(rows, event_time=event_time)
