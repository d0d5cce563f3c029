"""The SQLite online store read straight from its tables, without importing Feast.

``import feast`` and opening the store cost seconds at service start; the snapshot only
needs every row of four tables. Feast writes them as ``<project>_<view>`` with columns
``entity_key`` (its version-3 key encoding), ``feature_name``, ``value`` (a serialised
``feast.types.Value``) and ``event_ts``. This module decodes exactly those encodings and
refuses anything else (``UnsupportedEncoding``), so the caller falls back to the Feast read;
a test checks that both reads give the same snapshot on a real store.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from features import catalog
from features.online import EVENT_SECONDS, OnlineSnapshot, merge_row

#: Feast's ``ValueType.STRING`` in its entity key encoding.
_STRING = 2


class UnsupportedEncoding(ValueError):
    """A row this reader does not decode; use Feast's own read."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise UnsupportedEncoding("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def decode_value(buf: bytes) -> float | None:
    """A ``feast.types.Value`` holding one number (int32/int64/double/float/bool/timestamp)
    as a float; ``None`` when no value is set or it is explicitly null."""
    if not buf:
        return None
    tag, pos = _varint(buf, 0)
    field, wire = tag >> 3, tag & 7
    if field == 5 and wire == 1:  # double_val
        return float(struct.unpack_from("<d", buf, pos)[0])
    if field == 6 and wire == 5:  # float_val
        return float(struct.unpack_from("<f", buf, pos)[0])
    if field in (3, 4, 7, 8) and wire == 0:  # int32, int64, bool, unix_timestamp
        raw, _ = _varint(buf, pos)
        return float(raw - (1 << 64) if raw >= 1 << 63 else raw)
    if field == 19 and wire == 0:  # null_val
        return None
    raise UnsupportedEncoding(f"value field {field} (wire type {wire})")


def decode_entity_key(buf: bytes) -> dict[str, str]:
    """Join key → value of Feast's version-3 entity key (string entity values only)."""
    (n,) = struct.unpack_from("<I", buf, 0)
    pos = 4
    names = []
    for _ in range(n):
        kind, size = struct.unpack_from("<II", buf, pos)
        pos += 8
        if kind != _STRING:
            raise UnsupportedEncoding(f"join key type {kind}")
        names.append(buf[pos : pos + size].decode("utf8"))
        pos += size
    values = []
    for _ in range(n):
        kind, size = struct.unpack_from("<II", buf, pos)
        pos += 8
        if kind != _STRING:
            raise UnsupportedEncoding(f"entity value type {kind}")
        values.append(buf[pos : pos + size].decode("utf8"))
        pos += size
    if pos != len(buf):
        raise UnsupportedEncoding("trailing bytes in entity key")
    return dict(zip(names, values, strict=True))


def _seconds(stamp: object) -> int:
    if isinstance(stamp, int | float):  # Feast stores epoch seconds
        return int(stamp)
    if isinstance(stamp, datetime):
        ts = stamp
    elif isinstance(stamp, str | bytes):
        ts = datetime.fromisoformat(stamp.decode() if isinstance(stamp, bytes) else stamp)
    else:
        raise UnsupportedEncoding(f"event_ts {stamp!r}")
    ts = ts.astimezone(UTC) if ts.tzinfo is not None else ts.replace(tzinfo=UTC)
    return int(ts.timestamp())


def _read_table(
    conn: sqlite3.Connection,
    table: str,
    features: tuple[str, ...],
    keys: tuple[str, ...],
    wanted: set[tuple[str, ...]],
    stamps: list[int],
) -> dict[tuple[str, ...], dict[str, float]]:
    wanted_features = set(features)
    found: dict[tuple[str, ...], dict[str, float]] = {}
    rows = conn.execute(f'SELECT entity_key, feature_name, value, event_ts FROM "{table}"')
    for entity_key, feature, value, event_ts in rows:
        if feature not in wanted_features:
            continue
        names = decode_entity_key(entity_key)
        key = tuple(names[k] for k in keys)
        if key not in wanted:
            continue
        number = decode_value(value)
        if number is None:
            continue
        row = found.setdefault(key, {})
        row[feature] = number
        seconds = _seconds(event_ts)
        if seconds:
            stamps.append(seconds)
            seen = row.get(EVENT_SECONDS)
            row[EVENT_SECONDS] = float(seconds) if seen is None else min(seen, float(seconds))
    return found


def read_sqlite_snapshot(
    db_path: Path,
    project: str,
    node_ids: Sequence[str],
    node_skus: Sequence[tuple[str, str]],
    lanes: Sequence[tuple[str, str]],
) -> OnlineSnapshot:
    """The same snapshot ``features.online.read_online_snapshot`` reads through Feast."""
    if not db_path.exists():
        raise FileNotFoundError(f"no online store at {db_path}")
    read_at = datetime.now(UTC)
    stamps: list[int] = []
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        node: dict[str, dict[str, float]] = {}
        wanted_nodes: set[tuple[str, ...]] = {(n,) for n in node_ids}
        for view, names in (
            (catalog.VIEW_NODE_PROFILE, catalog.NODE_PROFILE),
            (catalog.VIEW_NODE_OPS, catalog.NODE_OPS),
        ):
            for (node_id,), values in _read_table(
                conn, f"{project}_{view}", names, ("node_id",), wanted_nodes, stamps
            ).items():
                merge_row(node.setdefault(node_id, {}), values)
        node_sku = _read_table(
            conn,
            f"{project}_{catalog.VIEW_NODE_SKU_INVENTORY}",
            catalog.NODE_SKU_INVENTORY,
            ("node_id", "sku"),
            set(node_skus),
            stamps,
        )
        lane = _read_table(
            conn,
            f"{project}_{catalog.VIEW_LANE_PERFORMANCE}",
            catalog.LANE_PERFORMANCE,
            ("node_id", "dest_region"),
            set(lanes),
            stamps,
        )
    except sqlite3.Error as exc:
        raise UnsupportedEncoding(f"online store tables: {exc}") from exc
    finally:
        conn.close()

    def when(seconds: int | None) -> datetime | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)

    return OnlineSnapshot(
        node=node,
        node_sku={(k[0], k[1]): v for k, v in node_sku.items()},
        lane={(k[0], k[1]): v for k, v in lane.items()},
        oldest_event=when(min(stamps) if stamps else None),
        newest_event=when(max(stamps) if stamps else None),
        read_at=read_at,
    )
