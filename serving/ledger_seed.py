"""First load of the ledger from the canonical tables: nodes and the newest recorded on-hand.

Runs once per empty ledger; afterwards the ledger is the truth and changes only through
orders and inventory adjustments.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from serving.catalogue import read_table
from serving.ledger import InitialStock, Ledger, NodeRecord


def seed_ledger(ledger: Ledger, raw_dir: Path) -> int:
    """Load nodes and stock if the ledger holds no nodes yet; returns stock rows loaded."""
    if ledger.nodes() or not (raw_dir / "nodes.parquet").exists():
        return 0
    import pyarrow as pa
    import pyarrow.compute as pc  # not pandas: this runs at start-up, where imports cost seconds

    nodes = read_table(raw_dir / "nodes.parquet").to_pylist()
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
            for r in nodes
        ]
    )
    inv = read_table(
        raw_dir / "inventory_snapshots.parquet", ["node_id", "sku", "on_hand", "event_timestamp"]
    )
    stamps = inv.column("event_timestamp")
    newest = pc.max(stamps)
    latest = inv.filter(pc.equal(stamps, newest))
    # microseconds, so pyarrow hands back a datetime (nanoseconds would need pandas)
    event_time = pc.cast(newest, pa.timestamp("us", tz="UTC"), safe=False).as_py().astimezone(UTC)
    rows = [
        InitialStock(node_id=str(n), sku=str(s), on_hand=int(q))
        for n, s, q in zip(
            latest.column("node_id").to_pylist(),
            latest.column("sku").to_pylist(),
            latest.column("on_hand").to_pylist(),
            strict=True,
        )
    ]
    return ledger.load_stock(rows, event_time=event_time)
