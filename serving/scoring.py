"""Batch scoring of (line, node) candidates: one model call per model per order.

The delivery model's inputs (node, lane, distance, weekday) do not depend on the SKU, so it
scores each distinct node of an order once, not once per line: LightGBM scores every row on
its own, so the numbers are the same and a 5-line order costs a fifth of the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from features import catalog
from routing import Prediction
from routing.geo import haversine_km
from serving.feature_snapshot import FeatureSnapshot
from serving.score_memo import Found, ScoreMemo

Rows = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class ScoringPair:
    line_id: str
    node_id: str
    sku: str
    qty: float


def score(
    candidates: Sequence[ScoringPair],
    snapshot: FeatureSnapshot,
    *,
    stockout_model: object,
    delivery_model: object,
    dest_lat: float,
    dest_lon: float,
    dest_region: str | None,
    weekday: int,
) -> dict[tuple[str, str], Prediction]:
    """Predictions keyed by (line_id, node_id)."""
    if not candidates:
        return {}
    rows = snapshot.locate(
        [c.node_id for c in candidates], [c.sku for c in candidates], dest_region
    )
    p_stock, p50, p90 = score_rows(
        rows,
        np.fromiter((c.qty for c in candidates), float, len(candidates)),
        snapshot,
        stockout_model=stockout_model,
        delivery_model=delivery_model,
        dest_lat=dest_lat,
        dest_lon=dest_lon,
        weekday=weekday,
    )
    return {
        (c.line_id, c.node_id): Prediction(p_stockout=a, days_p50=b, days_p90=d)
        for c, a, b, d in zip(candidates, p_stock.tolist(), p50.tolist(), p90.tolist(), strict=True)
    }


def score_rows(
    rows: Rows,
    qty: np.ndarray,
    snapshot: FeatureSnapshot,
    *,
    stockout_model: object,
    delivery_model: object,
    dest_lat: float,
    dest_lon: float,
    weekday: int,
    memo: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_stockout, days_p50, days_p90) per located candidate row (``FeatureSnapshot.locate``).

    ``memo``: take what the snapshot's prediction memo already holds and add what was
    computed (``serving.score_memo``: the same numbers the models give, bit for bit)."""
    ni, si, li = rows
    if not len(ni):
        empty = np.zeros(0)
        return empty, empty, empty
    qty = np.asarray(qty, dtype=np.float64)
    cache = snapshot.memo if memo else None

    def stockout(todo: np.ndarray | None) -> tuple[np.ndarray, ...]:
        cols = snapshot.columns(_take((ni, si, li), todo))
        cols["qty"] = _take1(qty, todo)
        x = np.column_stack([cols[f] for f in catalog.STOCKOUT_FEATURES])
        return (np.asarray(stockout_model.predict_array(x), dtype=np.float64),)  # type: ignore[attr-defined]

    (p_stock,) = _memoised(
        cache,
        "stock",
        len(ni),
        None if cache is None else lambda: cache.stock.lookup(stockout_model, si, qty),
        stockout,
        None if cache is None else lambda tok, todo, v: cache.stock.store(tok, si, todo, *v),
    )
    # one delivery row per distinct (node row, lane row): identical inputs, identical outputs.
    # A lane row names its node, so the pair is its lane row, or past the lanes its node row
    miss_l = len(snapshot.lane) - 1
    first, back = _distinct(np.where(li < miss_l, li, miss_l + ni), miss_l + len(snapshot.node))
    d_rows = (ni[first], si[first], li[first])
    lat, lon = snapshot.node_points(d_rows[0])
    distance = haversine_km(lat, lon, dest_lat, dest_lon)

    def delivery(todo: np.ndarray | None) -> tuple[np.ndarray, ...]:
        cols = snapshot.columns(_take(d_rows, todo))
        cols["distance_km"] = _take1(distance, todo)
        cols["weekday"] = np.full(len(cols["distance_km"]), float(weekday))
        x = np.column_stack([cols[f] for f in catalog.DELIVERY_FEATURES])
        v50, v90 = delivery_model.predict_array(x)  # type: ignore[attr-defined]
        return np.asarray(v50, dtype=np.float64), np.asarray(v90, dtype=np.float64)

    p50, p90 = _memoised(
        cache,
        "delivery",
        len(first),
        None
        if cache is None
        else lambda: cache.delivery.lookup(delivery_model, d_rows[0], d_rows[2], weekday, distance),
        delivery,
        None if cache is None else lambda tok, todo, v: cache.delivery.store(tok, todo, *v),
    )
    return p_stock, p50[back], p90[back]


def _distinct(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(one row of each distinct key, each row's index into those) for keys in
    ``[0, size)``: a scatter and a gather over a scratch array instead of a sort."""
    rows = np.arange(len(keys))
    slot = np.empty(size, dtype=np.intp)  # read only where just written
    slot[keys] = rows
    rep = slot[keys]  # the row that wrote each key last
    is_rep = rep == rows
    return np.flatnonzero(is_rep), (np.cumsum(is_rep) - 1)[rep]


def _take(rows: Rows, todo: np.ndarray | None) -> Rows:
    return rows if todo is None else (rows[0][todo], rows[1][todo], rows[2][todo])


def _take1(values: np.ndarray, todo: np.ndarray | None) -> np.ndarray:
    return values if todo is None else values[todo]


def _memoised(
    cache: ScoreMemo | None,
    kind: str,
    n: int,
    lookup: Callable[[], Found] | None,
    compute: Callable[[np.ndarray | None], tuple[np.ndarray, ...]],
    store: Callable[[Any, np.ndarray, tuple[np.ndarray, ...]], None] | None,
) -> tuple[np.ndarray, ...]:
    """One model's outputs for ``n`` rows: what the memo holds, the model (``compute``,
    given the rows to score or None for all) for the rest, which the memo then keeps."""
    if cache is None or lookup is None or store is None:
        return compute(None)
    held, todo, token = lookup()
    left = int(np.count_nonzero(todo))
    cache.stats.count(kind, n, n - left)
    if not left:
        return held
    if left == n:
        values = compute(None)
        store(token, todo, values)
        return values
    values = compute(todo)
    for out, v in zip(held, values, strict=True):
        out[todo] = v
    store(token, todo, values)
    return held
