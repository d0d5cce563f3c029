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


@dataclass(frozen=True)
class RowTables:
    """A snapshot's node ids as dense positions (every id one of its indexes names, then one
    position for ids none names), each position's node row, and per SKU / per region the
    node×SKU / lane row of every position (the missing row where there is none). Built off
    the request path except the per-SKU and per-region tables, each made on first use and
    kept (a push makes new tables only for SKUs that gained rows)."""

    pos: dict[object, int]
    node_rows: np.ndarray
    sku_rows: dict[str, np.ndarray]
    lane_rows: dict[object, np.ndarray]
    #: (node id sequence, its positions) last asked of ``positions_for``
    last: list[tuple[Sequence[str], np.ndarray]] = field(default_factory=list)

    @classmethod
    def build(cls, snap: FeatureSnapshot) -> RowTables:
        pos: dict[object, int] = dict.fromkeys(snap.node_index, 0)
        pos.update((k[0], 0) for k in snap.node_sku_index)  # type: ignore[index]
        pos.update((k[0], 0) for k in snap.lane_index)  # type: ignore[index]
        for i, key in enumerate(pos):
            pos[key] = i
        node_rows = np.full(len(pos) + 1, len(snap.node) - 1, dtype=np.intp)
        known = np.fromiter(map(pos.__getitem__, snap.node_index), np.intp, len(snap.node_index))
        node_rows[known] = np.fromiter(snap.node_index.values(), np.intp, len(known))
        return cls(pos, node_rows, {}, {})

    def pushed(self, snap: FeatureSnapshot, fresh: Sequence[tuple[str, str]]) -> RowTables:
        """The tables of ``snap``, this snapshot with node×SKU rows ``fresh`` added: the
        same tables when none was added; else new SKU tables (the missing row moved), and
        new positions too when a node is new."""
        if not fresh:
            return self
        if any(node not in self.pos for node, _ in fresh):
            return RowTables.build(snap)
        return replace(self, sku_rows={})

    def positions(self, node_ids: Sequence[str]) -> np.ndarray:
        """Position of each node id (the last one for an id no index names)."""
        unknown = len(self.pos)
        return np.fromiter(map(self.pos.get, node_ids, repeat(unknown)), np.intp, len(node_ids))

    def positions_for(self, node_ids: Sequence[str]) -> np.ndarray:
        """``positions``, remembered for the last sequence asked (the same object, or an
        equal one: comparing ids that are mostly the same objects is cheaper than hashing)."""
        last = self.last
        if last and (last[0][0] is node_ids or last[0][0] == node_ids):
            return last[0][1]
        at = self.positions(node_ids)
        self.last[:] = [(node_ids, at)]
        return at

    def _table(self, index: Mapping[object, int] | None, miss: int) -> np.ndarray:
        table = np.full(len(self.pos) + 1, miss, dtype=np.intp)
        if index:
            at = np.fromiter(map(self.pos.__getitem__, index), np.intp, len(index))
            table[at] = np.fromiter(index.values(), np.intp, len(index))
        return table

    def locate(
        self,
        snap: FeatureSnapshot,
        lines: Sequence[tuple[str, np.ndarray]],
        region: str | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows (node, node×SKU, lane) of lines given as (SKU, positions)."""
        assert snap.by_sku is not None and snap.by_region is not None
        lanes = self.lane_rows.get(region)
        if lanes is None:
            lanes = self._table(snap.by_region.get(region), len(snap.lane) - 1)
            self.lane_rows[region] = lanes
        at = [np.zeros(0, dtype=np.intp)]
        si = [at[0]]
        for sku, p in lines:
            key = sku.upper()
            table = self.sku_rows.get(key)
            if table is None:
                table = self._table(snap.by_sku.get(key), len(snap.node_sku) - 1)
                self.sku_rows[key] = table
            at.append(p)
            si.append(table[p])
        if len(at) == 2:
            return self.node_rows[at[1]], si[1], lanes[at[1]]
        p_all = np.concatenate(at)
        return self.node_rows[p_all], np.concatenate(si), lanes[p_all]


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
    #: the indexes above by SKU (node×SKU) and by region (lane), then node: what the row
    #: tables of ``rows`` are built from
    by_sku: dict[str, dict[object, int]] | None = field(default=None, compare=False, repr=False)
    by_region: dict[object, dict[object, int]] | None = field(
        default=None, compare=False, repr=False
    )
    #: node ids as dense positions with row tables per SKU and region (``RowTables``)
    rows: RowTables | None = field(default=None, compare=False, repr=False)

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
        self.rows = RowTables.build(self)
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
        pushed = replace(
            self,
            node_sku_index=index,
            node_sku=matrix,
            node_sku_ts=stamps,
            newest_event=newest,
            memo=None if self.memo is None else self.memo.derive(len(matrix), changed),
            by_sku=by_sku,
            rows=None,
        )
        if by_sku is not None and self.rows is not None:
            pushed.rows = self.rows.pushed(pushed, cast(list[tuple[str, str]], fresh))
        return pushed

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
        oldest = np.nan
        for ts, i in zip((self.node_ts, self.node_sku_ts, self.lane_ts), rows, strict=True):
            if ts is not None and len(i):
                oldest = np.fmin(oldest, np.fmin.reduce(ts[i]))  # NaN (unknown) ignored
        if np.isnan(oldest):
            return None
        return datetime.fromtimestamp(float(oldest), tz=UTC)

    def locate(
        self, node_ids: Sequence[str], skus: Sequence[str], region: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices (node, node×SKU, lane) of candidate pairs bound for one region. Pairs
        of one SKU come together (an order lists each line's candidates in turn): each run
        is one line of ``locate_lines``."""
        count = len(node_ids)
        if not count:
            return self.locate_lines([], region)
        change = np.fromiter(map(operator.ne, skus[1:], skus[:-1]), bool, count - 1)
        bounds = [0, *(np.flatnonzero(change) + 1).tolist(), count]
        return self.locate_lines([(skus[a], node_ids[a:b]) for a, b in pairwise(bounds)], region)

    def locate_lines(
        self, lines: Sequence[tuple[str, Sequence[str]]], region: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``locate`` of lines given as (SKU, its nodes' ids), rows in line order: one dict
        lookup per pair (node id → position), the rest array gathers from the tables of
        ``RowTables``."""
        tables = self._tables()
        return tables.locate(self, [(sku, tables.positions(ids)) for sku, ids in lines], region)

    def locate_at(
        self, lines: Sequence[tuple[str, np.ndarray]], region: str | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``locate_lines`` of lines given as (SKU, its nodes' positions: ``positions_for``):
        array gathers only."""
        return self._tables().locate(self, lines, region)

    def positions_for(self, node_ids: Sequence[str]) -> np.ndarray:
        """The position (``RowTables``) of each of these node ids, remembered for the last
        sequence object asked (a node set's id list, the same order after order)."""
        return self._tables().positions_for(node_ids)

    def _tables(self) -> RowTables:
        if self.rows is None or self.by_sku is None:
            self.indexed()
        assert self.rows is not None
        return self.rows

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
