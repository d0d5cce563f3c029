"""Batch scoring of (line, node) candidates: one model call per model per order.

The delivery model's inputs (node, lane, distance, weekday) do not depend on the SKU, so it
scores each distinct node of an order once, not once per line: LightGBM scores every row on
its own, so the numbers are the same and a 5-line order costs a fifth of the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features import catalog
from routing import Prediction
from routing.geo import haversine_km
from serving.feature_snapshot import FeatureSnapshot
from serving.score_memo import ScoreMemo

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
    n = len(ni)
    if not n:
        empty = np.zeros(0)
        return empty, empty, empty
    qty = np.asarray(qty, dtype=np.float64)
    cache = snapshot.memo if memo else None
    p_stock = _stockout(ni, si, li, qty, snapshot, stockout_model, cache)
    # one delivery row per distinct (node row, lane row): identical inputs, identical outputs
    key = ni.astype(np.int64) * (len(snapshot.lane) + 1) + li
    _, first, back = np.unique(key, return_index=True, return_inverse=True)
    p50, p90 = _delivery(
        (ni[first], si[first], li[first]),
        snapshot,
        delivery_model,
        cache,
        dest_lat=dest_lat,
        dest_lon=dest_lon,
        weekday=weekday,
    )
    back = back.reshape(-1)
    return p_stock, p50[back], p90[back]


def _stockout(
    ni: np.ndarray,
    si: np.ndarray,
    li: np.ndarray,
    qty: np.ndarray,
    snapshot: FeatureSnapshot,
    model: object,
    cache: ScoreMemo | None,
) -> np.ndarray:
    n = len(ni)
    if cache is None:
        out, todo, token = np.empty(n), None, None
    else:
        out, todo, token = cache.stock.lookup(model, si, qty)
        cache.stats.stock_rows += n
        left = int(todo.sum())
        cache.stats.stock_hits += n - left
        if not left:
            return out
        if left == n:
            todo = None
    rows = (ni, si, li) if todo is None else (ni[todo], si[todo], li[todo])
    cols = snapshot.columns(rows)
    cols["qty"] = qty if todo is None else qty[todo]
    x = np.column_stack([cols[f] for f in catalog.STOCKOUT_FEATURES])
    values = np.asarray(model.predict_array(x), dtype=np.float64)  # type: ignore[attr-defined]
    if todo is None:
        out = values
        todo = np.ones(n, dtype=bool)
    else:
        out[todo] = values
    if cache is not None:
        cache.stock.store(token, si, todo, values)
    return out


def _delivery(
    rows: Rows,
    snapshot: FeatureSnapshot,
    model: object,
    cache: ScoreMemo | None,
    *,
    dest_lat: float,
    dest_lon: float,
    weekday: int,
) -> tuple[np.ndarray, np.ndarray]:
    ni, si, li = rows
    n = len(ni)
    lat, lon = snapshot.node_points(ni)
    distance = haversine_km(lat, lon, dest_lat, dest_lon)
    if cache is None:
        todo, token = None, None
        p50, p90 = np.empty(n), np.empty(n)
    else:
        p50, p90, todo, token = cache.delivery.lookup(model, ni, li, weekday, distance)
        cache.stats.delivery_rows += n
        left = int(todo.sum())
        cache.stats.delivery_hits += n - left
        if not left:
            return p50, p90
        if left == n:
            todo = None
    dcols = snapshot.columns(rows if todo is None else (ni[todo], si[todo], li[todo]))
    dcols["distance_km"] = distance if todo is None else distance[todo]
    dcols["weekday"] = np.full(len(dcols["distance_km"]), float(weekday))
    x = np.column_stack([dcols[f] for f in catalog.DELIVERY_FEATURES])
    v50, v90 = model.predict_array(x)  # type: ignore[attr-defined]
    v50, v90 = np.asarray(v50, dtype=np.float64), np.asarray(v90, dtype=np.float64)
    if todo is None:
        p50, p90 = v50, v90
        todo = np.ones(n, dtype=bool)
    else:
        p50[todo], p90[todo] = v50, v90
    if cache is not None:
        cache.delivery.store(token, todo, v50, v90)
    return p50, p90
