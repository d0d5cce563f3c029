"""Exact memo of both models' predictions against one feature snapshot.

A prediction is a pure function of the feature row the model reads. On the request path
most of that row is fixed by which snapshot rows it came from: the stockout row by its
node×SKU row (which fixes the node, hence the node row) plus ``qty``; the delivery row by
its node row, lane row and weekday plus ``distance_km``. The two values that vary per
request are reduced to what the trees can see of them: a LightGBM tree compares a numeric
feature only with its split thresholds (``value <= threshold``, zero and NaN aside), so
two values with no threshold of the model between them (the same *bin*) take the same
path through every tree and get the same raw score, hence the same calibrated probability
or band. Equal keys therefore mean equal predictions, bit for bit; the memo never
approximates.

* stockout: one float64 array per qty bin, indexed by node×SKU row (NaN: not computed);
  a live push of node×SKU rows (``FeatureSnapshot.with_node_sku``) copies them with the
  pushed rows cleared;
* delivery: a bounded dict from (node row, lane row, weekday, distance bin) to a slot in
  two arrays; it depends on node and lane rows only, so every snapshot sharing those
  matrices shares it; when full it starts over.

Both are bound to the model objects they were filled with; another model (a new champion)
starts them empty. Readers take one consistent state tuple and never see a slot reused, so
request threads need no lock; writers of the same key write the same value. A model whose
trees cannot be read (no LightGBM model text, a categorical split on the varying feature,
linear trees) is simply scored fresh.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np

#: LightGBM's ``kZeroThreshold`` (the float ``1e-35f`` as a double): a value within it of
#: zero is read as 0 by the dense-row predictor.
ZERO = float(np.float32(1e-35))
#: qty bin codes memoised per node×SKU row (``bins``: two per threshold interval, for
#: LightGBM's zero test; qty beyond them is scored fresh)
MAX_QTY_BINS = 8
#: delivery entries kept before the dict starts over (≈ 100 bytes each)
DELIVERY_ENTRIES = 1 << 16
_WEEKDAYS = 7
_KNOWN = ("StockoutRiskModel", "DeliveryQuantileModel", "CompactStockout", "CompactDelivery")


def booster_texts(model: object) -> list[str] | None:
    """LightGBM model text of every booster behind a champion's ``predict_array``, or None
    for a model whose prediction is not known to be a function of its trees alone."""
    if type(model).__name__ not in _KNOWN:
        return None
    texts = getattr(model, "texts", None)  # compact forms keep theirs by name
    if isinstance(texts, dict):
        return [str(t) for t in texts.values()]
    main = getattr(model, "model_str_", None)
    if not isinstance(main, str):
        return None
    extra = getattr(model, "model_str90_", None)
    return [main] + ([extra] if isinstance(extra, str) else [])


def split_thresholds(text: str, feature: int) -> np.ndarray | None:
    """Sorted distinct thresholds of every split on ``feature`` in one booster's model text;
    None when one of them is categorical or a tree is linear (then thresholds do not tell
    the whole story)."""
    trees = text.split("end of trees", 1)[0].split("\nTree=")[1:]
    found: list[float] = []
    for tree in trees:
        fields: dict[str, str] = {}
        for line in tree.split("\n"):
            name, sep, value = line.partition("=")
            if sep:
                fields[name] = value
        if fields.get("is_linear", "0").strip() not in ("", "0"):
            return None
        if "split_feature" not in fields:
            continue  # a single-leaf tree
        feats = np.array(fields["split_feature"].split(), dtype=np.int64)
        mine = feats == feature
        if not mine.any():
            continue
        kinds = np.array(fields["decision_type"].split(), dtype=np.int64)[mine]
        if (kinds & 1).any():
            return None
        found.extend(float(t) for t in np.array(fields["threshold"].split())[mine])
    return np.unique(np.asarray(found, dtype=np.float64))


def model_edges(model: object, feature: str) -> np.ndarray | None:
    """Thresholds on ``feature`` over all of ``model``'s boosters (None: not memoisable)."""
    texts = booster_texts(model)
    names = getattr(model, "feature_names_", None)
    if texts is None or names is None or feature not in names:
        return None
    index = list(names).index(feature)
    parts = [split_thresholds(t, index) for t in texts]
    if any(p is None for p in parts):
        return None
    return np.unique(np.concatenate([p for p in parts if p is not None] + [np.zeros(0)]))


def bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: values in one bin take the same side of every threshold in
    ``edges`` and agree on LightGBM's zero test; -1 for NaN (not memoised)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.abs(v) <= ZERO, 0.0, v)
    out = np.searchsorted(edges, v, side="left").astype(np.int64) * 2 + (v == 0.0)
    out[np.isnan(v)] = -1
    return np.asarray(out, dtype=np.int64)


@dataclass
class MemoStats:
    """Rows looked up and rows found, per model (approximate under concurrent requests)."""

    stock_rows: int = 0
    stock_hits: int = 0
    delivery_rows: int = 0
    delivery_hits: int = 0

    def as_dict(self) -> dict[str, float]:
        def rate(hit: int, rows: int) -> float:
            return round(hit / rows, 4) if rows else 0.0

        return {
            "stock_rows": self.stock_rows,
            "stock_hit_rate": rate(self.stock_hits, self.stock_rows),
            "delivery_rows": self.delivery_rows,
            "delivery_hit_rate": rate(self.delivery_hits, self.delivery_rows),
        }


class _ModelBound:
    """Holds one state per model: built by ``_make`` from the model's thresholds on
    ``FEATURE`` on first use, None while the model cannot be memoised (remembered, so its
    text is read once)."""

    FEATURE = ""

    def __init__(self) -> None:
        #: (model, its state), replaced whole so a reader never pairs one with another's
        self._bind: tuple[object, Any] = (None, None)
        self._lock = threading.Lock()

    def _make(self, model: object, edges: np.ndarray) -> Any:
        raise NotImplementedError

    def _bound(self, model: object) -> Any:
        bound, state = self._bind
        if bound is model:
            return state
        with self._lock:
            if self._bind[0] is not model:
                edges = model_edges(model, self.FEATURE)
                self._bind = (model, None if edges is None else self._make(model, edges))
            return self._bind[1]


@dataclass(frozen=True)
class _StockState:
    model: object
    edges: np.ndarray
    columns: list[np.ndarray | None]  # per qty bin, one value per node×SKU row


class StockMemo(_ModelBound):
    """Stockout probabilities by (node×SKU row, qty bin) for one snapshot's rows."""

    FEATURE = "qty"

    def __init__(self, rows: int, state: _StockState | None = None) -> None:
        super().__init__()
        self.rows = rows  # node×SKU rows including the trailing "missing" row
        if state is not None:
            self._bind = (state.model, state)

    def _make(self, model: object, edges: np.ndarray) -> _StockState:
        return _StockState(model, edges, [None] * MAX_QTY_BINS)

    def lookup(
        self, model: object, si: np.ndarray, qty: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """(values, rows still to compute, token for ``store``): values hold NaN where the
        memo has nothing."""
        out = np.full(len(si), np.nan)
        state = self._bound(model)
        if state is None:
            return out, np.ones(len(si), dtype=bool), None
        b = bins(qty, state.edges)
        ok = (si < self.rows - 1) & (b >= 0) & (b < MAX_QTY_BINS)
        for k, col in enumerate(state.columns):
            if col is not None:
                at = ok & (b == k)
                out[at] = col[si[at]]
        return out, np.isnan(out), (state, b, ok)

    def store(self, token: Any, si: np.ndarray, todo: np.ndarray, values: np.ndarray) -> None:
        if token is None:
            return
        state, b, ok = token
        keep = ok[todo]
        rows, kbin, vals = si[todo][keep], b[todo][keep], values[keep]
        for k in np.unique(kbin).tolist():
            col = state.columns[k]
            if col is None:
                with self._lock:
                    col = state.columns[k]
                    if col is None:
                        col = state.columns[k] = np.full(self.rows, np.nan)
            col[rows[kbin == k]] = vals[kbin == k]

    def derive(self, rows: int, changed: np.ndarray) -> StockMemo:
        """The memo of a snapshot whose node×SKU matrix has ``rows`` rows, the old ones kept
        in place (new ones before the trailing missing row) and ``changed`` rows replaced."""
        state = self._bind[1]
        if state is None:
            return StockMemo(rows)
        kept = min(self.rows - 1, rows - 1)
        columns: list[np.ndarray | None] = []
        for col in state.columns:
            if col is None:
                columns.append(None)
                continue
            fresh = np.full(rows, np.nan)
            fresh[:kept] = col[:kept]
            fresh[changed] = np.nan
            columns.append(fresh)
        return StockMemo(rows, _StockState(state.model, state.edges, columns))


@dataclass(frozen=True)
class _DeliveryState:
    model: object
    edges: np.ndarray
    slots: dict[int, int]
    p50: np.ndarray
    p90: np.ndarray
    used: list[int] = field(default_factory=lambda: [0])


class DeliveryMemo(_ModelBound):
    """Delivery (p50, p90) by (node row, lane row, weekday, distance bin)."""

    FEATURE = "distance_km"

    def __init__(self, lane_rows: int, capacity: int = DELIVERY_ENTRIES) -> None:
        super().__init__()
        self.lane_rows = lane_rows
        self.capacity = capacity

    def _make(self, model: object, edges: np.ndarray) -> _DeliveryState:
        return _DeliveryState(model, edges, {}, np.empty(self.capacity), np.empty(self.capacity))

    def keys(
        self, state: _DeliveryState, ni: np.ndarray, li: np.ndarray, weekday: int, dist: np.ndarray
    ) -> np.ndarray:
        b = bins(dist, state.edges)
        width = 2 * (len(state.edges) + 1)
        key = ((ni.astype(np.int64) * (self.lane_rows + 1) + li) * _WEEKDAYS + weekday) * width + b
        key[b < 0] = -1
        return np.asarray(key, dtype=np.int64)

    def lookup(
        self, model: object, ni: np.ndarray, li: np.ndarray, weekday: int, dist: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
        """(p50, p90, rows still to compute, token for ``store``)."""
        n = len(ni)
        p50, p90 = np.full(n, np.nan), np.full(n, np.nan)
        state = self._bound(model) if 0 <= weekday < _WEEKDAYS else None
        if state is None:
            return p50, p90, np.ones(n, dtype=bool), None
        key = self.keys(state, ni, li, weekday, dist)
        keys = key.tolist()
        slot = np.fromiter(map(state.slots.get, keys, repeat(-1)), np.int64, n)
        hit = slot >= 0
        p50[hit] = state.p50[slot[hit]]
        p90[hit] = state.p90[slot[hit]]
        return p50, p90, ~hit, (state, key)

    def store(self, token: Any, todo: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> None:
        if token is None:
            return
        state: _DeliveryState = token[0]
        key: np.ndarray = token[1]
        fresh = key[todo]
        keep = fresh >= 0
        fresh, v50, v90 = fresh[keep], p50[keep], p90[keep]
        if not len(fresh):
            return
        with self._lock:
            if self._bind[1] is not state:
                return  # another model since: these numbers belong to the old one
            start = state.used[0]
            if start + len(fresh) > self.capacity:
                if len(fresh) > self.capacity:
                    return
                state = self._make(state.model, state.edges)
                self._bind = (state.model, state)
                start = 0
            end = start + len(fresh)
            state.p50[start:end] = v50
            state.p90[start:end] = v90
            state.used[0] = end
            # values first, then the keys that point at them: a reader never sees a slot
            # before its numbers
            state.slots.update(zip(fresh.tolist(), range(start, end), strict=True))


class ScoreMemo:
    """The memo of one snapshot: stockout by node×SKU row, delivery by node and lane row."""

    def __init__(
        self,
        stock: StockMemo,
        delivery: DeliveryMemo,
        stats: MemoStats | None = None,
    ) -> None:
        self.stock = stock
        self.delivery = delivery
        self.stats = stats or MemoStats()

    @classmethod
    def empty(cls, node_sku_rows: int, lane_rows: int) -> ScoreMemo:
        return cls(StockMemo(node_sku_rows), DeliveryMemo(lane_rows))

    def derive(self, node_sku_rows: int, changed: Sequence[int] | np.ndarray) -> ScoreMemo:
        """For a snapshot with these node×SKU rows replaced (node and lane rows the same)."""
        idx = np.asarray(changed, dtype=np.int64)
        return ScoreMemo(self.stock.derive(node_sku_rows, idx), self.delivery, self.stats)
