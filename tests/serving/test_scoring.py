"""Scoring an order reads each distinct node's delivery row once; the numbers must be the
ones per-pair scoring gives (real LightGBM boosters on random rows)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np

from features import catalog
from features.online import EVENT_SECONDS
from routing.geo import haversine_km
from serving.feature_snapshot import FeatureSnapshot
from serving.scoring import ScoringPair, score

AT = datetime(2026, 3, 2, tzinfo=UTC)


def _booster(width: int, seed: int) -> lgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, (400, width))
    y = x[:, 0] * 0.3 + np.sin(x[:, 1]) + rng.normal(0, 0.1, 400)
    params = {"verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5, "seed": seed}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=30)


class _Stockout:
    def __init__(self) -> None:
        self.b = _booster(len(catalog.STOCKOUT_FEATURES), 1)

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.b.predict(x, num_threads=1))


class _Delivery:
    def __init__(self) -> None:
        self.b = _booster(len(catalog.DELIVERY_FEATURES), 2)
        self.rows = 0

    def predict_array(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.rows += len(x)
        p50 = np.asarray(self.b.predict(x, num_threads=1))
        return p50, p50 * 1.5


def _snapshot(rng: random.Random) -> FeatureSnapshot:
    def row(cols: tuple[str, ...]) -> dict[str, float]:
        return {**{c: rng.uniform(0, 10) for c in cols}, EVENT_SECONDS: AT.timestamp()}

    node_cols = catalog.NODE_PROFILE + catalog.NODE_OPS
    nodes = {f"N{i}": {**row(node_cols), "node_lat": 40.0 + i, "node_lon": -80.0} for i in range(6)}
    node_sku = {(n, s): row(catalog.NODE_SKU_INVENTORY) for n in nodes for s in "ABC"}
    lanes = {(n, "NY"): row(catalog.LANE_PERFORMANCE) for n in list(nodes)[:4]}
    return FeatureSnapshot.from_online(nodes, node_sku, lanes, newest_event=AT, oldest_event=AT)


def test_distinct_nodes_score_the_delivery_model_once_with_per_pair_numbers() -> None:
    rng = random.Random(3)
    snap = _snapshot(rng)
    stock, deliv = _Stockout(), _Delivery()
    # 3 lines over 7 nodes (N9 has no feature rows: the snapshot's defaults)
    pairs = [
        ScoringPair(line, node, sku, qty)
        for line, sku, qty in (("1", "A", 1.0), ("2", "b", 2.0), ("3", "C", 1.0))
        for node in ("N0", "N1", "N2", "N3", "N4", "N5", "N9")
    ]
    got = score(
        pairs,
        snap,
        stockout_model=stock,
        delivery_model=deliv,
        dest_lat=41.5,
        dest_lon=-75.0,
        dest_region="NY",
        weekday=2,
    )
    assert deliv.rows == 7  # one row per node, not per pair
    cols = snap.gather([p.node_id for p in pairs], [p.sku for p in pairs], ["NY"] * len(pairs))
    cols["qty"] = np.array([p.qty for p in pairs])
    cols["weekday"] = np.full(len(pairs), 2.0)
    cols["distance_km"] = haversine_km(cols["node_lat"], cols["node_lon"], 41.5, -75.0)
    x_s = np.column_stack([cols[f] for f in catalog.STOCKOUT_FEATURES])
    x_d = np.column_stack([cols[f] for f in catalog.DELIVERY_FEATURES])
    want_s = stock.predict_array(x_s)
    want_50, want_90 = deliv.predict_array(x_d)
    for k, p in enumerate(pairs):
        pred = got[(p.line_id, p.node_id)]
        assert pred.p_stockout == want_s[k]
        assert (pred.days_p50, pred.days_p90) == (want_50[k], want_90[k])
    assert len({got[("1", n)].days_p50 for n in ("N0", "N1", "N2", "N3")}) == 4
