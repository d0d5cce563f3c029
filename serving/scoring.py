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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_stockout, days_p50, days_p90) per located candidate row (``FeatureSnapshot.locate``)."""
    ni, si, li = rows
    n = len(ni)
    if not n:
        empty = np.zeros(0)
        return empty, empty, empty
    cols = snapshot.columns(rows)
    cols["qty"] = np.asarray(qty, dtype=float)
    x_stock = np.column_stack([cols[f] for f in catalog.STOCKOUT_FEATURES])
    p_stock = np.asarray(stockout_model.predict_array(x_stock), dtype=np.float64)  # type: ignore[attr-defined]
    # one delivery row per distinct (node row, lane row): identical inputs, identical outputs
    key = ni.astype(np.int64) * (len(snapshot.lane) + 1) + li
    _, first, back = np.unique(key, return_index=True, return_inverse=True)
    dcols = snapshot.columns((ni[first], si[first], li[first]))
    dcols["weekday"] = np.full(len(first), float(weekday))
    dcols["distance_km"] = haversine_km(dcols["node_lat"], dcols["node_lon"], dest_lat, dest_lon)
    x_deliv = np.column_stack([dcols[f] for f in catalog.DELIVERY_FEATURES])
    p50, p90 = delivery_model.predict_array(x_deliv)  # type: ignore[attr-defined]
    back = back.reshape(-1)
    return (
        p_stock,
        np.asarray(p50, dtype=np.float64)[back],
        np.asarray(p90, dtype=np.float64)[back],
    )
