"""Streaming parquet writers that validate every chunk against its contract first.

Large worlds produce hundreds of millions of snapshot rows, so tables are written in
row groups as days are simulated instead of being held in memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contracts.raw import validate

_TS = pa.timestamp("ns", tz="UTC")
ARROW_SCHEMAS: dict[str, pa.Schema] = {
    "nodes": pa.schema(
        [
            ("node_id", pa.string()),
            ("node_type", pa.string()),
            ("name", pa.string()),
            ("city", pa.string()),
            ("state", pa.string()),
            ("postal_code", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("timezone", pa.string()),
            ("priority", pa.int64()),
            ("enabled", pa.bool_()),
            ("daily_capacity", pa.int64()),
            ("handling_cost", pa.float64()),
            ("ships_groups", pa.string()),
        ]
    ),
    "skus": pa.schema(
        [
            ("sku", pa.string()),
            ("product_group", pa.string()),
            ("weight_kg", pa.float64()),
            ("price", pa.float64()),
        ]
    ),
    "inventory_snapshots": pa.schema(
        [
            ("event_timestamp", _TS),
            ("node_id", pa.string()),
            ("sku", pa.string()),
            ("on_hand", pa.int64()),
            ("days_since_count", pa.int64()),
        ]
    ),
    "demand": pa.schema(
        [
            ("event_timestamp", _TS),
            ("node_id", pa.string()),
            ("sku", pa.string()),
            ("units", pa.int64()),
        ]
    ),
    "node_days": pa.schema(
        [
            ("event_timestamp", _TS),
            ("node_id", pa.string()),
            ("capacity", pa.int64()),
            ("orders", pa.int64()),
            ("backlog", pa.int64()),
        ]
    ),
    "allocations": pa.schema(
        [
            ("event_timestamp", _TS),
            ("allocation_id", pa.string()),
            ("order_id", pa.string()),
            ("node_id", pa.string()),
            ("sku", pa.string()),
            ("qty", pa.int64()),
            ("dest_region", pa.string()),
            ("dest_lat", pa.float64()),
            ("dest_lon", pa.float64()),
            ("rejected", pa.bool_()),
            ("reason", pa.string()),
        ]
    ),
    "shipments": pa.schema(
        [
            ("event_timestamp", _TS),
            ("shipment_id", pa.string()),
            ("order_id", pa.string()),
            ("node_id", pa.string()),
            ("dest_region", pa.string()),
            ("dest_lat", pa.float64()),
            ("dest_lon", pa.float64()),
            ("carrier", pa.string()),
            ("delivery_days", pa.float64()),
            ("promised_days", pa.float64()),
        ]
    ),
    #: hidden ground truth; deliberately not a canonical table
    "true_inventory": pa.schema(
        [
            ("event_timestamp", _TS),
            ("node_id", pa.string()),
            ("sku", pa.string()),
            ("true_on_hand", pa.int64()),
        ]
    ),
}
FLUSH_ROWS = 1_000_000


class TableSink:
    """Buffers frames for one table and writes validated row groups to ``<path>.partial``.

    The file only takes its final name on :meth:`close`, so a crash never leaves a table
    that looks complete.
    """

    def __init__(self, name: str, path: Path, *, canonical: bool = True) -> None:
        self.name = name
        self.path = path
        self.canonical = canonical
        self.rows = 0
        self._schema = ARROW_SCHEMAS[name]
        self._partial = path.with_name(path.name + ".partial")
        self._buffer: list[pd.DataFrame] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, frame: pd.DataFrame) -> None:
        self._buffer.append(frame)
        self._buffered += len(frame)
        if self._buffered >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        frame = (
            pd.concat(self._buffer, ignore_index=True) if len(self._buffer) > 1 else self._buffer[0]
        )
        self._buffer, self._buffered = [], 0
        if self.canonical:
            frame = validate(self.name, frame)
        table = pa.Table.from_pandas(
            frame[self._schema.names], schema=self._schema, preserve_index=False
        )
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._partial, self._schema)
        self._writer.write_table(table)
        self.rows += len(frame)

    def close(self) -> None:
        """Flush, finish the file and move it into place (an empty table is still written)."""
        self.flush()
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self._partial, self._schema)
        self._writer.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> TableSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
