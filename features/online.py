"""Bulk reads of the online store into an in-memory snapshot, off the request path.

The API refreshes the snapshot periodically and routes from memory, so a slow or absent
online store never adds latency to an order. Feast does not enforce TTL on online reads;
the snapshot carries the oldest and newest feature event times so the caller can refuse
stale features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from features import catalog
from features.progress import quiet_feast

if TYPE_CHECKING:  # the service reads SQLite without Feast (features.online_sqlite)
    from feast import FeatureStore

TS_SUFFIX = "__ts"
#: Key of a row's event time (Unix seconds, the oldest of its features) inside its feature
#: dict: the snapshot keeps it per row, so a decision knows how old the rows it used are.
EVENT_SECONDS = "__event_seconds"


def merge_row(into: dict[str, float], values: dict[str, float]) -> None:
    """Add one view's features of an entity; its event time is the oldest of both."""
    before = into.get(EVENT_SECONDS)
    into.update(values)
    if before is not None:
        into[EVENT_SECONDS] = min(before, values.get(EVENT_SECONDS, before))


@dataclass(frozen=True)
class OnlineSnapshot:
    """Latest feature values by entity; entities missing online are absent, not defaulted."""

    node: dict[str, dict[str, float]]
    node_sku: dict[tuple[str, str], dict[str, float]]
    lane: dict[tuple[str, str], dict[str, float]]
    oldest_event: datetime | None
    newest_event: datetime | None
    read_at: datetime

    def age_hours(self, now: datetime | None = None) -> float | None:
        """Hours since the oldest feature event in the snapshot (None when it is empty)."""
        if self.oldest_event is None:
            return None
        return ((now or datetime.now(UTC)) - self.oldest_event).total_seconds() / 3600.0


@dataclass
class _Span:
    oldest: int | None = None
    newest: int | None = None

    def add(self, seconds: int) -> None:
        self.oldest = seconds if self.oldest is None else min(self.oldest, seconds)
        self.newest = seconds if self.newest is None else max(self.newest, seconds)

    @staticmethod
    def as_datetime(seconds: int | None) -> datetime | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


def _read_view(
    store: FeatureStore,
    view: str,
    features: tuple[str, ...],
    keys: tuple[str, ...],
    rows: Sequence[tuple[str, ...]],
    batch: int,
    span: _Span,
) -> dict[tuple[str, ...], dict[str, float]]:
    """Feature dicts of one view for the given key tuples, read in batches."""
    found: dict[tuple[str, ...], dict[str, float]] = {}
    refs = [f"{view}:{name}" for name in features]
    for begin in range(0, len(rows), batch):
        chunk = rows[begin : begin + batch]
        entity_rows: dict[str, list[Any]] = {k: [r[i] for r in chunk] for i, k in enumerate(keys)}
        with quiet_feast(True):
            response = store.get_online_features(features=refs, entity_rows=entity_rows)
        data = response.to_dict(include_event_timestamps=True)
        for i, key in enumerate(chunk):
            values = {name: data[name][i] for name in features}
            if all(v is None for v in values.values()):
                continue
            row = {n: float(v) for n, v in values.items() if v is not None}
            stamps = [data[name + TS_SUFFIX][i] for name in features if values[name] is not None]
            for seconds in stamps:
                if seconds:
                    span.add(int(seconds))
            known = [int(x) for x in stamps if x]
            if known:
                row[EVENT_SECONDS] = float(min(known))
            found[key] = row
    return found


def read_online_snapshot(
    store: FeatureStore,
    node_ids: Sequence[str],
    node_skus: Sequence[tuple[str, str]],
    lanes: Sequence[tuple[str, str]],
    *,
    batch: int = 5000,
) -> OnlineSnapshot:
    """Read node, node×SKU and lane features for the given entities into one snapshot."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    read_at = datetime.now(UTC)
    span = _Span()
    node_rows = [(n,) for n in dict.fromkeys(node_ids)]
    node: dict[str, dict[str, float]] = {}
    for view, names in (
        (catalog.VIEW_NODE_PROFILE, catalog.NODE_PROFILE),
        (catalog.VIEW_NODE_OPS, catalog.NODE_OPS),
    ):
        for (node_id,), values in _read_view(
            store, view, names, ("node_id",), node_rows, batch, span
        ).items():
            merge_row(node.setdefault(node_id, {}), values)
    node_sku = _read_view(
        store,
        catalog.VIEW_NODE_SKU_INVENTORY,
        catalog.NODE_SKU_INVENTORY,
        ("node_id", "sku"),
        list(dict.fromkeys(node_skus)),
        batch,
        span,
    )
    lane = _read_view(
        store,
        catalog.VIEW_LANE_PERFORMANCE,
        catalog.LANE_PERFORMANCE,
        ("node_id", "dest_region"),
        list(dict.fromkeys(lanes)),
        batch,
        span,
    )
    return OnlineSnapshot(
        node=node,
        node_sku={(k[0], k[1]): v for k, v in node_sku.items()},
        lane={(k[0], k[1]): v for k, v in lane.items()},
        oldest_event=_Span.as_datetime(span.oldest),
        newest_event=_Span.as_datetime(span.newest),
        read_at=read_at,
    )
