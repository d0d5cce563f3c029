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

* stockout: a float64 table with one row per qty bin seen and one column per node×SKU row
  (NaN: not computed), read with one gather per batch; a live push of node×SKU rows
  (``FeatureSnapshot.with_node_sku``) copies it with the pushed rows cleared;
* delivery: a bounded open-addressing hash table (numpy arrays, linear probing, probed for
  a whole batch at once) from the key of (node row, lane row, weekday, distance bin) to
  (p50, p90); it depends on node and lane rows only, so every snapshot sharing those
  matrices shares it; when half full it starts over.

Both are bound to the model objects they were filled with; another model (a new champion)
starts them empty. Readers take one consistent state and never see a slot reused (values
are written before the key that points at them), so request threads need no lock; writers
of the same key write the same value, and a write lost to a concurrent one is only a miss. A model whose
trees cannot be read (no LightGBM model text, a categorical split on the varying feature,
linear trees) is simply scored fresh.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: LightGBM's ``kZeroThreshold`` (the float ``1e-35f`` as a double): a value within it of
#: zero is read as 0 by the dense-row predictor.
ZERO = float(np.float32(1e-35))
#: qty bin codes memoised per node×SKU row (``bins``: two per threshold interval, for
#: LightGBM's zero test; qty beyond them is scored fresh)
MAX_QTY_BINS = 8
#: delivery entries kept before the table starts over (a table of twice as many slots,
#: 24 bytes each)
DELIVERY_ENTRIES = 1 << 16
#: probes per key before the delivery table gives up on it (a miss, scored fresh)
MAX_PROBES = 32
#: Fibonacci hashing's multiplier (2^64 / golden ratio, odd)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
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

    def count(self, kind: str, rows: int, hits: int) -> None:
        """Add one lookup of ``rows`` rows of model ``kind`` (stock, delivery)."""
        if kind == "stock":
            self.stock_rows += rows
            self.stock_hits += hits
        else:
            self.delivery_rows += rows
            self.delivery_hits += hits

    def as_dict(self) -> dict[str, float]:
        def rate(hit: int, rows: int) -> float:
            return round(hit / rows, 4) if rows else 0.0

        return {
            "stock_rows": self.stock_rows,
            "stock_hit_rate": rate(self.stock_hits, self.stock_rows),
            "delivery_rows": self.delivery_rows,
            "delivery_hit_rate": rate(self.delivery_hits, self.delivery_rows),
        }


#: what a memo's ``lookup`` returns: the values it holds per output (NaN where it has
#: none), the rows still to compute, and the token its ``store`` takes
Found = tuple[tuple[np.ndarray, ...], np.ndarray, Any]


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
    #: table row of each qty bin; bin ``MAX_QTY_BINS`` (and any bin without one) points
    #: at the last row, which stays NaN
    slot: np.ndarray
    #: (qty bins seen + 1, node×SKU rows): the last column (the missing row) stays NaN
    table: np.ndarray


class StockMemo(_ModelBound):
    """Stockout probabilities by (node×SKU row, qty bin) for one snapshot's rows."""

    FEATURE = "qty"

    def __init__(self, rows: int, state: _StockState | None = None) -> None:
        super().__init__()
        self.rows = rows  # node×SKU rows including the trailing "missing" row
        if state is not None:
            self._bind = (state.model, state)

    def _make(self, model: object, edges: np.ndarray) -> _StockState:
        return _StockState(
            model, edges, np.zeros(MAX_QTY_BINS + 1, np.intp), np.full((1, self.rows), np.nan)
        )

    def lookup(self, model: object, si: np.ndarray, qty: np.ndarray) -> Found:
        """(values,), rows still to compute, token for ``store``."""
        state: _StockState | None = self._bound(model)
        if state is None:
            return (np.full(len(si), np.nan),), np.ones(len(si), dtype=bool), None
        b = bins(qty, state.edges)
        b[(b < 0) | (b >= MAX_QTY_BINS)] = MAX_QTY_BINS
        out = state.table[state.slot[b], si]
        return (out,), np.isnan(out), (model, b)

    def store(self, token: Any, si: np.ndarray, todo: np.ndarray, values: np.ndarray) -> None:
        """Keep ``values`` (of the rows ``todo`` of a ``lookup``) in this memo."""
        if token is None:
            return
        model, b = token
        keep = (b[todo] < MAX_QTY_BINS) & (si[todo] < self.rows - 1)
        kbin, rows, vals = b[todo][keep], si[todo][keep], values[keep]
        bound, state = self._bind
        if bound is not model or not len(kbin):
            return  # another model since: these numbers belong to the old one
        if (state.slot[kbin] == len(state.table) - 1).any():
            state = self._grow(model, np.unique(kbin))
            if state is None:
                return
        state.table[state.slot[kbin], rows] = vals

    def _grow(self, model: object, wanted: np.ndarray) -> _StockState | None:
        """The state with a table row for every bin in ``wanted`` (one copy per new bin
        set; a value written meanwhile into the old table is only lost, not wrong)."""
        with self._lock:
            bound, state = self._bind
            if bound is not model:
                return None
            last = len(state.table) - 1
            new = [int(k) for k in wanted if state.slot[k] == last]
            if not new:
                return state  # type: ignore[no-any-return]
            slot = state.slot.copy()
            table = np.full((last + 1 + len(new), self.rows), np.nan)
            table[:last] = state.table[:last]
            slot[slot == last] = last + len(new)
            for k, b in enumerate(new):
                slot[b] = last + k
            state = _StockState(model, state.edges, slot, table)
            self._bind = (model, state)
            return state

    def derive(self, rows: int, changed: np.ndarray) -> StockMemo:
        """The memo of a snapshot whose node×SKU matrix has ``rows`` rows, the old ones kept
        in place (new ones before the trailing missing row) and ``changed`` rows replaced."""
        state: _StockState | None = self._bind[1]
        if state is None:
            return StockMemo(rows)
        kept = min(self.rows - 1, rows - 1)
        table = np.full((len(state.table), rows), np.nan)
        table[:-1, :kept] = state.table[:-1, :kept]
        table[:, changed] = np.nan
        return StockMemo(rows, _StockState(state.model, state.edges, state.slot, table))


@dataclass(frozen=True)
class _DeliveryState:
    model: object
    edges: np.ndarray
    #: the key held in each slot (-1: empty) and its values
    keys: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    used: list[int]


def _hash(keys: np.ndarray, bits: int) -> np.ndarray:
    """Fibonacci hashing: the top ``bits`` bits of key × 2^64/φ (wrapping)."""
    mixed = keys.view(np.uint64) * _GOLDEN
    return (mixed >> np.uint64(64 - bits)).astype(np.intp)


class DeliveryMemo(_ModelBound):
    """Delivery (p50, p90) by (node row, lane row, weekday, distance bin)."""

    FEATURE = "distance_km"

    def __init__(self, lane_rows: int, capacity: int = DELIVERY_ENTRIES) -> None:
        super().__init__()
        self.lane_rows = lane_rows
        self.capacity = capacity
        self._bits = max(int(capacity - 1).bit_length() + 1, 1)  # slots: 2 x capacity

    def _make(self, model: object, edges: np.ndarray) -> _DeliveryState:
        slots = 1 << self._bits
        return _DeliveryState(
            model, edges, np.full(slots, -1, np.int64), np.empty(slots), np.empty(slots), [0]
        )

    def keys(
        self, state: _DeliveryState, ni: np.ndarray, li: np.ndarray, weekday: int, dist: np.ndarray
    ) -> np.ndarray:
        b = bins(dist, state.edges)
        width = 2 * (len(state.edges) + 1)
        key = ((ni.astype(np.int64) * (self.lane_rows + 1) + li) * _WEEKDAYS + weekday) * width + b
        key[b < 0] = -1
        return np.asarray(key, dtype=np.int64)

    def _find(self, state: _DeliveryState, key: np.ndarray) -> np.ndarray:
        """The slot of each key, -1 where it is not held: every key probed at once, one
        round per probe step."""
        found = np.full(len(key), -1, np.intp)
        mask = len(state.keys) - 1
        at = np.flatnonzero(key >= 0)
        h = _hash(key[at], self._bits)
        for _ in range(MAX_PROBES):
            if not len(at):
                break
            held = state.keys[h]
            hit = held == key[at]
            found[at[hit]] = h[hit]
            going = ~hit & (held >= 0)
            at, h = at[going], (h[going] + 1) & mask
        return found

    def lookup(
        self, model: object, ni: np.ndarray, li: np.ndarray, weekday: int, dist: np.ndarray
    ) -> Found:
        """(p50, p90), rows still to compute, token for ``store``."""
        n = len(ni)
        state: _DeliveryState | None = self._bound(model) if 0 <= weekday < _WEEKDAYS else None
        if state is None:
            return (np.full(n, np.nan), np.full(n, np.nan)), np.ones(n, dtype=bool), None
        key = self.keys(state, ni, li, weekday, dist)
        slot = self._find(state, key)
        hit = slot >= 0
        p50, p90 = state.p50[slot], state.p90[slot]  # slot -1: junk, overwritten below
        p50[~hit] = np.nan
        p90[~hit] = np.nan
        return (p50, p90), ~hit, (state, key)

    def store(self, token: Any, todo: np.ndarray, p50: np.ndarray, p90: np.ndarray) -> None:
        """Keep the values of the rows ``todo`` of a ``lookup``."""
        if token is None:
            return
        state: _DeliveryState = token[0]
        fresh: np.ndarray = token[1][todo]
        keep = fresh >= 0
        fresh, first = np.unique(fresh[keep], return_index=True)
        if not len(fresh):
            return
        v50, v90 = p50[keep][first], p90[keep][first]
        with self._lock:
            if self._bind[1] is not state:
                return  # another model or a fresh table since
            new = self._find(state, fresh) < 0
            fresh, v50, v90 = fresh[new], v50[new], v90[new]
            if state.used[0] + len(fresh) > self.capacity:
                if len(fresh) > self.capacity:
                    return
                state = self._make(state.model, state.edges)
                self._bind = (state.model, state)
            self._insert(state, fresh, v50, v90)

    def _insert(
        self, state: _DeliveryState, key: np.ndarray, v50: np.ndarray, v90: np.ndarray
    ) -> None:
        """Linear probing, all keys at once (distinct, not yet held): each takes the first
        empty slot on its probe path, the first key of several wanting one slot wins it and
        the others probe on."""
        mask = len(state.keys) - 1
        at = np.arange(len(key))
        h = _hash(key, self._bits)
        for _ in range(MAX_PROBES):
            if not len(at):
                break
            empty = state.keys[h] < 0
            slots, first = np.unique(h[empty], return_index=True)
            won = at[empty][first]
            # values first, then the keys that point at them: a reader never sees a slot
            # before its numbers
            state.p50[slots] = v50[won]
            state.p90[slots] = v90[won]
            state.keys[slots] = key[won]
            state.used[0] += len(won)
            going = np.ones(len(at), dtype=bool)
            going[np.flatnonzero(empty)[first]] = False
            at, h = at[going], (h[going] + 1) & mask


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
