"""In-memory copy of the online features, refreshed in the background with a staleness bound.

The request path only gathers rows from numpy matrices: no Feast call, no pandas. Each row
keeps its event time, so a decision can say how old the rows it scored with are
(``oldest_used``) instead of trusting the newest row of the whole store.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise, repeat
from typing import Any, cast

import numpy as np

from features import catalog
from features.online import EVENT_SECONDS
from serving.score_memo import ScoreMemo

NODE_COLUMNS = catalog.NODE_PROFILE + catalog.NODE_OPS
NODE_SKU_COLUMNS = catalog.NODE_SKU_INVENTORY
LANE_COLUMNS = catalog.LANE_PERFORMANCE
_NODE_LAT, _NODE_LON = NODE_COLUMNS.index("node_lat"), NODE_COLUMNS.index("node_lon")


def _matrix(
    rows: Mapping[Any, Mapping[str, float]], columns: Sequence[str]
) -> tuple[dict[Any, int], np.ndarray, np.ndarray]:
    """Index, values (last row: "missing") and event seconds per row (NaN: unknown)."""
    keys = list(rows)
    index = {k: i for i, k in enumerate(keys)}
    data = np.full((len(keys) + 1, len(columns)), np.nan)
    stamps = np.full(len(keys) + 1, np.nan)
    for i, key in enumerate(keys):
        values = rows[key]
        data[i] = [values.get(c, np.nan) if values.get(c) is not None else np.nan for c in columns]
        stamps[i] = values.get(EVENT_SECONDS, np.nan)
    return index, data, stamps


@dataclass
class FeatureSnapshot:
    """Feature matrices keyed by entity; missing rows fall back to column medians."""

    node_index: dict[object, int]
    node: np.ndarray
    node_sku_index: dict[object, int]
    node_sku: np.ndarray
    lane_index: dict[object, int]
    lane: np.ndarray
    newest_event: datetime | None
    oldest_event: datetime | None
    read_at: datetime
    #: event time (Unix seconds) of each row of ``node``, ``node_sku``, ``lane``; NaN unknown
    node_ts: np.ndarray | None = None
    node_sku_ts: np.ndarray | None = None
    lane_ts: np.ndarray | None = None
    #: predictions already made against these rows (``serving.score_memo``); None: no memo
    memo: ScoreMemo | None = field(default=None, compare=False, repr=False)
    #: the indexes above by SKU (node×SKU) and by region (lane), then node: ``locate``
    #: looks a line's nodes up in one dict without building a key per pair
    by_sku: dict[str, dict[object, int]] | None = field(default=None, compare=False, repr=False)
    by_region: dict[object, dict[object, int]] | None = field(
        default=None, compare=False, repr=False
    )

    @classmethod
    def from_online(
        cls,
        node: Mapping[str, Mapping[str, float]],
        node_sku: Mapping[tuple[str, str], Mapping[str, float]],
        lane: Mapping[tuple[str, str], Mapping[str, float]],
        *,
        newest_event: datetime | None,
        oldest_event: datetime | None,
        read_at: datetime | None = None,
    ) -> FeatureSnapshot:
        ni, nm, nt = _matrix(node, NODE_COLUMNS)
        si, sm, st = _matrix(
            {(n, s.upper()): v for (n, s), v in node_sku.items()}, NODE_SKU_COLUMNS
        )
        li, lm, lt = _matrix(lane, LANE_COLUMNS)
        for m in (nm, sm, lm):
            body = m[:-1]
            if len(body):
                med = np.nanmedian(np.where(np.isnan(body).all(axis=0), 0.0, body), axis=0)
                med = np.nan_to_num(med)
                m[-1] = med
                nan_r, nan_c = np.where(np.isnan(body))
                body[nan_r, nan_c] = med[nan_c]
            else:
                m[-1] = 0.0
        return cls(
            ni,
            nm,
            si,
            sm,
            li,
            lm,
            newest_event,
            oldest_event,
            read_at or datetime.now(UTC),
            node_ts=nt,
            node_sku_ts=st,
            lane_ts=lt,
            memo=ScoreMemo.empty(len(sm), len(lm)),
        ).indexed()

    def indexed(self) -> FeatureSnapshot:
        """This snapshot with ``by_sku`` and ``by_region`` built (off the request path)."""
        by_sku: dict[str, dict[object, int]] = {}
        for key, i in self.node_sku_index.items():
            node, sku = cast(tuple[str, str], key)
            by_sku.setdefault(sku, {})[node] = i
        by_region: dict[object, dict[object, int]] = {}
        for key, i in self.lane_index.items():
            node, region = cast(tuple[str, str | None], key)
            by_region.setdefault(region, {})[node] = i
        self.by_sku, self.by_region = by_sku, by_region
        return self

    def carrying(self, previous: FeatureSnapshot | None) -> FeatureSnapshot:
        """This snapshot (just read, not yet serving) keeping what ``previous``'s memo
        predicted from rows that are the same here: a periodic re-read of an unchanged
        store does not start scoring cold."""
        if previous is None or previous.memo is None or self.memo is None:
            return self
        if self.node_index != previous.node_index or not np.array_equal(self.node, previous.node):
            return self  # both models read node rows
        old = previous.memo
        delivery = self.memo.delivery
        if self.lane_index == previous.lane_index and np.array_equal(self.lane, previous.lane):
            delivery = old.delivery
        stock = self.memo.stock
        if (
            self.node_sku_index == previous.node_sku_index
            and self.node_sku.shape == previous.node_sku.shape
        ):
            changed = np.flatnonzero((self.node_sku != previous.node_sku).any(axis=1))
            stock = old.stock.derive(len(self.node_sku), changed)
        self.memo = ScoreMemo(stock, delivery, old.stats)
        return self

    def with_node_sku(
        self, rows: Mapping[tuple[str, str], Mapping[str, float]], event_time: datetime
    ) -> FeatureSnapshot:
        """A copy with these node×SKU rows replaced (or added), as of ``event_time``; the
        request path keeps reading the old one until the reference is swapped."""
        index = dict(self.node_sku_index)
        fresh = [k for k in ((n, s.upper()) for n, s in rows) if k not in index]
        body = self.node_sku[:-1]
        matrix = np.vstack([body, np.zeros((len(fresh), body.shape[1])), self.node_sku[-1:]])
        old_ts = self._stamps(self.node_sku_ts, len(self.node_sku))
        stamps = np.concatenate([old_ts[:-1], np.full(len(fresh) + 1, np.nan)])
        by_sku = None if self.by_sku is None else dict(self.by_sku)
        copied: set[str] = set()
        for key in fresh:
            index[key] = len(index)
            if by_sku is not None:
                node, sku = key
                if sku not in copied:  # the old snapshot's dicts stay as they were
                    by_sku[sku] = dict(by_sku.get(sku, {}))
                    copied.add(sku)
                by_sku[sku][node] = index[key]
        seconds = event_time.timestamp()
        changed = []
        for (n, s), values in rows.items():
            i = index[(n, s.upper())]
            matrix[i] = [values[c] for c in NODE_SKU_COLUMNS]
            stamps[i] = seconds
            changed.append(i)
        newest = event_time if self.newest_event is None else max(self.newest_event, event_time)
        return replace(
            self,
            node_sku_index=index,
            node_sku=matrix,
            node_sku_ts=stamps,
            newest_event=newest,
            memo=None if self.memo is None else self.memo.derive(len(matrix), changed),
            by_sku=by_sku,
        )

    @staticmethod
    def _stamps(stamps: np.ndarray | None, rows: int) -> np.ndarray:
        return np.full(rows, np.nan) if stamps is None else stamps

    def node_sku_row(self, node_id: str, sku: str) -> dict[str, float] | None:
        i = self.node_sku_index.get((node_id, sku.upper()))
        if i is None:
            return None
        return {c: float(self.node_sku[i, j]) for j, c in enumerate(NODE_SKU_COLUMNS)}

    def node_feature(self, column: str) -> dict[str, float]:
        """One node-level feature (``NODE_COLUMNS``) of every node the snapshot holds."""
        j = NODE_COLUMNS.index(column)
        return {str(k): float(self.node[i, j]) for k, i in self.node_index.items()}

    def age_hours(self, now: datetime | None = None) -> float | None:
        if self.newest_event is None:
            return None
        return ((now or datetime.now(UTC)) - self.newest_event).total_seconds() / 3600.0

    def on_hand(self) -> dict[tuple[str, str], float]:
        """(node_id, SKU upper-case) → recorded on-hand, to seed availability."""
        col = NODE_SKU_COLUMNS.index("on_hand")
        return {k: float(self.node_sku[i, col]) for k, i in self.node_sku_index.items()}  # type: ignore[misc]

    def oldest_used(
        self, node_ids: Sequence[str], skus: Sequence[str], regions: Sequence[str | None]
    ) -> datetime | None:
        """Event time of the oldest stored row these candidates read (None: none stored)."""
        return self.oldest_of(self._indices(node_ids, skus, regions))

    def oldest_of(self, rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> datetime | None:
        """``oldest_used`` of rows already located (``locate``)."""
        found = [
            self._stamps(ts, len(m))[i]
            for ts, m, i in zip(
                (self.node_ts, self.node_sku_ts, self.lane_ts),
                (self.node, self.node_sku, self.lane),
                rows,
                strict=True,
            )
        ]
        stamps = np.concatenate(found)
        stamps = stamps[~np.isnan(stamps)]
        if not len(stamps):
            return None
        return datetime.fromtimestamp(float(stamps.min()), tz=UTC)

    def locate(
        self, node_ids: Sequence[str], skus: Sequence[str], region: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices (node, node×SKU, lane) of candidate pairs bound for one region. Pairs
        of one SKU come together (an order lists each line's candidates in turn): each run
        is looked up in that SKU's own index, every lookup a C-level ``dict.get``."""
        if self.by_sku is None or self.by_region is None:
            self.indexed()
        assert self.by_sku is not None and self.by_region is not None
        miss_n, miss_s, miss_l = len(self.node) - 1, len(self.node_sku) - 1, len(self.lane) - 1
        count = len(node_ids)
        ni = np.fromiter(map(self.node_index.get, node_ids, repeat(miss_n)), np.intp, count)
        lanes = self.by_region.get(region, {})
        li = np.fromiter(map(lanes.get, node_ids, repeat(miss_l)), np.intp, count)
        si = np.empty(count, np.intp)
        if not count:
            return ni, si, li
        change = np.fromiter(map(operator.ne, skus[1:], skus[:-1]), bool, count - 1)
        bounds = [0, *(np.flatnonzero(change) + 1).tolist(), count]
        for start, end in pairwise(bounds):
            rows = self.by_sku.get(skus[start].upper(), {})
            si[start:end] = np.fromiter(
                map(rows.get, node_ids[start:end], repeat(miss_s)), np.intp, end - start
            )
        return ni, si, li

    def _indices(
        self, node_ids: Sequence[str], skus: Sequence[str], regions: Sequence[str | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        miss_n, miss_s, miss_l = len(self.node) - 1, len(self.node_sku) - 1, len(self.lane) - 1
        ni = np.fromiter((self.node_index.get(n, miss_n) for n in node_ids), np.intp, len(node_ids))
        si = np.fromiter(
            (
                self.node_sku_index.get((n, s.upper()), miss_s)
                for n, s in zip(node_ids, skus, strict=True)
            ),
            np.intp,
            len(node_ids),
        )
        li = np.fromiter(
            (self.lane_index.get((n, r), miss_l) for n, r in zip(node_ids, regions, strict=True)),
            np.intp,
            len(node_ids),
        )
        return ni, si, li

    def gather(
        self, node_ids: Sequence[str], skus: Sequence[str], regions: Sequence[str | None]
    ) -> dict[str, np.ndarray]:
        """Feature columns for candidate rows, by name, ready to stack in a model's order."""
        return self.columns(self._indices(node_ids, skus, regions))

    def node_points(self, ni: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(latitude, longitude) of these node rows."""
        return self.node[ni, _NODE_LAT], self.node[ni, _NODE_LON]

    def columns(self, rows: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """``gather`` of rows already located (``locate``)."""
        ni, si, li = rows
        cols: dict[str, np.ndarray] = {}
        node_rows, sku_rows, lane_rows = self.node[ni], self.node_sku[si], self.lane[li]
        for j, c in enumerate(NODE_COLUMNS):
            cols[c] = node_rows[:, j]
        for j, c in enumerate(NODE_SKU_COLUMNS):
            cols[c] = sku_rows[:, j]
        for j, c in enumerate(LANE_COLUMNS):
            cols[c] = lane_rows[:, j]
        return cols
