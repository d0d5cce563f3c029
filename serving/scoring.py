"""Batch scoring of (line, node) candidates: one model call per model per order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features import catalog
from routing import Prediction
from routing.geo import haversine_km
from serving.feature_snapshot import FeatureSnapshot


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
    nodes = [c.node_id for c in candidates]
    cols = snapshot.gather(nodes, [c.sku for c in candidates], [dest_region] * len(nodes))
    cols["qty"] = np.fromiter((c.qty for c in candidates), float, len(candidates))
    cols["weekday"] = np.full(len(candidates), float(weekday))
    cols["distance_km"] = haversine_km(cols["node_lat"], cols["node_lon"], dest_lat, dest_lon)
    x_stock = np.column_stack([cols[f] for f in catalog.STOCKOUT_FEATURES])
    x_deliv = np.column_stack([cols[f] for f in catalog.DELIVERY_FEATURES])
    p_stock = stockout_model.predict_array(x_stock)  # type: ignore[attr-defined]
    p50, p90 = delivery_model.predict_array(x_deliv)  # type: ignore[attr-defined]
    return {
        (c.line_id, c.node_id): Prediction(
            p_stockout=float(p_stock[i]), days_p50=float(p50[i]), days_p90=float(p90[i])
        )
        for i, c in enumerate(candidates)
    }
