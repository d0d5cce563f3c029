"""The prediction memo gives exactly the numbers the models give: over many destinations,
weekdays and quantities, after a live push of node×SKU rows, after a new champion, for the
full estimators and their compact forms alike; a model it cannot read is scored fresh."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features import catalog
from features.online import EVENT_SECONDS
from serving import compact_model
from serving.feature_snapshot import FeatureSnapshot
from serving.score_memo import MAX_QTY_BINS, ZERO, DeliveryMemo, StockMemo, bins, model_edges
from serving.scoring import score_rows
from training.models import DeliveryQuantileModel, StockoutRiskModel

AT = datetime(2026, 3, 2, tzinfo=UTC)
NODES = [f"N{i}" for i in range(12)]
SKUS = ["A", "B", "C", "D"]


def _frame(features: tuple[str, ...], n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.uniform(0, 10, n) for c in features})
    if "qty" in frame:
        frame["qty"] = rng.integers(1, 6, n).astype(float)
    if "distance_km" in frame:
        frame["distance_km"] = rng.uniform(0, 3000, n)
    if "weekday" in frame:
        frame["weekday"] = rng.integers(0, 7, n).astype(float)
    return frame


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    f = _frame(catalog.STOCKOUT_FEATURES, 2600, 0)
    logit = -2 + 0.3 * f["on_hand"] - 0.5 * f["qty"] + 0.2 * f["backlog"]
    y = (np.random.default_rng(1).uniform(size=len(f)) < 1 / (1 + np.exp(-logit))).astype(int)
    stock = StockoutRiskModel(catalog.STOCKOUT_FEATURES, num_boost_round=40, num_threads=1)
    stock.fit(f[:2000], y[:2000], f[2000:], y[2000:])
    g = _frame(catalog.DELIVERY_FEATURES, 3000, 2)
    days = (
        1 + g["distance_km"] / 500 + g["backlog"] / 4 + np.random.default_rng(3).gamma(2, 0.5, 3000)
    )
    deliv = DeliveryQuantileModel(
        catalog.DELIVERY_FEATURES,
        num_boost_round=40,
        num_threads=1,
        band_groups=("weekday", "node_type_code"),
        band_min_rows=100,
        band_on="p90",
    )
    deliv.fit(g[:2400], days[:2400].to_numpy(), g[2400:], days[2400:].to_numpy())
    out: dict[str, object] = {"stockout": stock, "delivery": deliv}
    for role, model in list(out.items()):
        found = compact_model.verified_compact(model)
        assert found is not None
        out[f"compact_{role}"] = compact_model.build(*found)
    return out


def _snapshot() -> FeatureSnapshot:
    rng = random.Random(5)

    def row(cols: tuple[str, ...]) -> dict[str, float]:
        return {**{c: rng.uniform(0, 10) for c in cols}, EVENT_SECONDS: AT.timestamp()}

    node_cols = catalog.NODE_PROFILE + catalog.NODE_OPS
    nodes = {
        n: {**row(node_cols), "node_lat": rng.uniform(27, 47), "node_lon": rng.uniform(-122, -72)}
        for n in NODES
    }
    for i, n in enumerate(NODES):
        nodes[n]["node_type_code"] = float(i % 3)
    node_sku = {(n, s): row(catalog.NODE_SKU_INVENTORY) for n in NODES[:10] for s in SKUS}
    lanes = {(n, r): row(catalog.LANE_PERFORMANCE) for n in NODES[:9] for r in ("NY", "CA")}
    return FeatureSnapshot.from_online(nodes, node_sku, lanes, newest_event=AT, oldest_event=AT)


def _calls(snap: FeatureSnapshot, count: int, seed: int) -> list[dict[str, object]]:
    """Orders of 1-3 lines over random nodes (some without feature rows) and destinations,
    destinations repeating so the memo is used."""
    rng = np.random.default_rng(seed)
    places = [(rng.uniform(27, 47), rng.uniform(-122, -72), r) for r in ("NY", "CA", "TX")] * 2
    out = []
    for _ in range(count):
        lines = rng.choice(SKUS, int(rng.integers(1, 4)), replace=False)
        nodes = rng.choice(NODES, int(rng.integers(3, 12)), replace=False).tolist()
        node_ids = [n for _ in lines for n in nodes]
        skus = [str(s) for s in lines for _ in nodes]
        qty = np.repeat(rng.choice([1.0, 1.0, 2.0, 5.0, 40.0], len(lines)), len(nodes))
        lat, lon, region = places[int(rng.integers(0, len(places)))]
        out.append(
            {
                "rows": snap.locate(node_ids, skus, region),
                "qty": qty,
                "dest_lat": lat,
                "dest_lon": lon,
                "weekday": int(rng.integers(0, 7)),
            }
        )
    return out


def _score(
    snap: FeatureSnapshot, call: dict[str, object], stock: object, deliv: object, memo: bool
):
    return score_rows(
        call["rows"],  # type: ignore[arg-type]
        call["qty"],  # type: ignore[arg-type]
        snap,
        stockout_model=stock,
        delivery_model=deliv,
        dest_lat=call["dest_lat"],  # type: ignore[arg-type]
        dest_lon=call["dest_lon"],  # type: ignore[arg-type]
        weekday=call["weekday"],  # type: ignore[arg-type]
        memo=memo,
    )


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("form", ["", "compact_"])
def test_memoised_predictions_are_the_models_own(models: dict[str, object], form: str) -> None:
    stock, deliv = models[f"{form}stockout"], models[f"{form}delivery"]
    snap = _snapshot()
    calls = _calls(snap, 150, 7)
    for _ in range(2):  # cold, then warm
        for call in calls:
            assert _same(
                _score(snap, call, stock, deliv, True), _score(snap, call, stock, deliv, False)
            )
    assert snap.memo is not None
    stats = snap.memo.stats.as_dict()
    assert stats["stock_hit_rate"] > 0.4
    assert stats["delivery_hit_rate"] > 0.4


def test_a_pushed_row_and_a_new_champion_are_not_served_from_the_memo(
    models: dict[str, object],
) -> None:
    stock, deliv = models["compact_stockout"], models["compact_delivery"]
    snap = _snapshot()
    call = {
        "rows": snap.locate(NODES[:6], ["A"] * 6, "NY"),
        "qty": np.ones(6),
        "dest_lat": 40.0,
        "dest_lon": -75.0,
        "weekday": 2,
    }
    before = _score(snap, call, stock, deliv, True)
    values = dict.fromkeys(catalog.NODE_SKU_INVENTORY, 0.0)  # N0's stock of A gone
    pushed = snap.with_node_sku({("N0", "A"): values}, AT + timedelta(minutes=1))
    after = _score(pushed, call, stock, deliv, True)
    assert _same(after, _score(pushed, call, stock, deliv, False))
    assert after[0][0] != before[0][0]  # the pushed row was scored again
    assert _same(_score(snap, call, stock, deliv, True), before)  # the old snapshot unchanged
    # a new champion (here: the full estimators) starts the memo over
    fresh = _score(pushed, call, models["stockout"], models["delivery"], True)
    assert _same(fresh, _score(pushed, call, models["stockout"], models["delivery"], False))


def test_bins_follow_the_split_thresholds_and_lightgbms_zero_test() -> None:
    edges = np.array([-ZERO, ZERO, 1.5, 2.5])
    got = bins(np.array([1.0, 1.5, 1.5000001, 2.5, 3.0, 0.0, ZERO / 2, -ZERO, np.nan]), edges)
    assert got[0] == got[1] != got[2]  # value <= threshold goes left
    assert got[2] == got[3] != got[4]
    assert got[5] == got[6] == got[7]  # read as 0 by LightGBM
    assert got[8] == -1


def test_models_it_cannot_read_are_not_memoised(models: dict[str, object]) -> None:
    class Opaque:
        feature_names_ = catalog.STOCKOUT_FEATURES

        def predict_array(self, x: np.ndarray) -> np.ndarray:
            return np.zeros(len(x))

    assert model_edges(Opaque(), "qty") is None
    assert model_edges(models["stockout"], "qty") is not None
    assert model_edges(models["compact_delivery"], "distance_km") is not None


def test_a_reread_store_keeps_what_its_unchanged_rows_predicted(
    models: dict[str, object],
) -> None:
    stock, deliv = models["compact_stockout"], models["compact_delivery"]
    first = _snapshot()
    calls = _calls(first, 40, 13)
    for call in calls:
        _score(first, call, stock, deliv, True)
    assert first.memo is not None
    stats = first.memo.stats
    hits = stats.stock_hits, stats.delivery_hits
    for call in calls:  # warm: what the memo can hold is found
        _score(first, call, stock, deliv, True)
    warm = stats.stock_hits - hits[0], stats.delivery_hits - hits[1]
    assert warm[0] > 0 and warm[1] > 0
    # the same rows read again: found as in the old snapshot
    again = _snapshot().carrying(first)
    assert again.memo is not None and again.memo.stats is stats
    hits = stats.stock_hits, stats.delivery_hits
    for call in calls:
        assert _same(
            _score(again, call, stock, deliv, True), _score(again, call, stock, deliv, False)
        )
    assert (stats.stock_hits - hits[0], stats.delivery_hits - hits[1]) == warm
    # one node×SKU row differs in the store: that row alone is scored again
    changed = _snapshot()
    i = changed.node_sku_index[("N0", "A")]
    changed.node_sku[i] += 1.0
    changed = changed.carrying(again)
    call = {
        "rows": changed.locate(["N0", "N1"], ["A", "A"], "NY"),
        "qty": np.ones(2),
        "dest_lat": 40.0,
        "dest_lon": -75.0,
        "weekday": 2,
    }
    assert _same(
        _score(changed, call, stock, deliv, True), _score(changed, call, stock, deliv, False)
    )
    # a node row differs: nothing is carried
    moved = _snapshot()
    moved.node[0, 0] += 1.0
    assert moved.carrying(again).memo is not again.memo and moved.memo is not None
    assert moved.memo.stats is not again.memo.stats


def test_threads_and_live_pushes_never_read_anothers_numbers(models: dict[str, object]) -> None:
    stock, deliv = models["compact_stockout"], models["compact_delivery"]
    current = [_snapshot()]
    calls = _calls(current[0], 30, 17)  # row indices stay valid: pushes only replace rows
    failures: list[str] = []
    stop = threading.Event()

    def score() -> None:
        rng = random.Random(threading.get_ident())
        while not stop.is_set():
            snap, call = current[-1], rng.choice(calls)
            if not _same(
                _score(snap, call, stock, deliv, True), _score(snap, call, stock, deliv, False)
            ):
                failures.append(f"differs on snapshot {len(current)}")

    def push() -> None:
        rng = random.Random(1)
        for k in range(40):
            values = {c: rng.uniform(0, 10) for c in catalog.NODE_SKU_INVENTORY}
            key = (rng.choice(NODES[:10]), rng.choice(SKUS))
            current.append(current[-1].with_node_sku({key: values}, AT + timedelta(seconds=k)))
            time.sleep(0.005)

    workers = [threading.Thread(target=score) for _ in range(3)]
    for w in workers:
        w.start()
    push()
    stop.set()
    for w in workers:
        w.join()
    assert not failures
    assert current[-1].memo is not None and current[-1].memo.stats.stock_hits > 0


def test_the_delivery_table_gives_only_what_it_was_given() -> None:
    """A table of 16 slots (8 entries before it starts over): keys collide, probe past each
    other, arrive twice in one batch and outgrow it; every hit is the value stored for its
    key, and within one table every stored key is found."""
    model = object()
    memo = DeliveryMemo(lane_rows=50, capacity=8)
    memo._bind = (model, memo._make(model, np.array([10.0, 20.0, 40.0])))
    rng = np.random.default_rng(3)
    truth: dict[int, tuple[float, float]] = {}
    for _ in range(300):
        n = int(rng.integers(1, 7))
        ni, li = rng.integers(0, 6, n), rng.integers(0, 51, n)
        dist = rng.choice([5.0, 15.0, 30.0, 50.0, np.nan], n)
        weekday = int(rng.integers(0, 7))
        (p50, p90), todo, token = memo.lookup(model, ni, li, weekday, dist)
        key = token[1]
        for k, hit in zip(key.tolist(), (~todo).tolist(), strict=True):
            assert not hit or k in truth  # a hit is a key that was stored
        for k, a, b in zip(key[~todo].tolist(), p50[~todo], p90[~todo], strict=True):
            assert truth[k] == (a, b)
        assert np.isnan(p50[todo]).all() and np.isnan(p90[todo]).all()
        assert todo[key < 0].all()  # NaN distance: never memoised
        v50 = np.array([truth.get(k, (float(k % 97), 0.0))[0] for k in key[todo].tolist()])
        v90 = v50 + 0.5
        for k, a, b in zip(key[todo].tolist(), v50, v90, strict=True):
            truth[k] = (a, b)
        state = memo._bind[1]
        memo.store(token, todo, v50, v90)
        if memo._bind[1] is state:  # same table: everything it took is found
            held = state.keys[state.keys >= 0]
            assert state.used[0] == len(held) == len(set(held.tolist())) <= memo.capacity
            assert (memo._find(state, held) >= 0).all()
    assert memo._bind[1].used[0] > 0


def test_the_stockout_table_keeps_each_qty_bin_apart() -> None:
    model = object()
    memo = StockMemo(rows=6)  # 5 node×SKU rows and the missing row
    edges = np.arange(1.5, 1.5 + MAX_QTY_BINS)  # more bins than the memo keeps
    memo._bind = (model, memo._make(model, edges))
    truth: dict[tuple[int, float], float] = {}
    rng = np.random.default_rng(4)
    qtys = [1.0, 2.0, 3.0, 40.0, 0.0, np.nan]
    for _ in range(200):
        si = rng.integers(0, 6, 5)
        qty = rng.choice(qtys, 5)
        (out,), todo, token = memo.lookup(model, si, qty)
        for r, q, v, t in zip(si.tolist(), qty.tolist(), out.tolist(), todo.tolist(), strict=True):
            if not t:
                assert truth[(r, q)] == v
            assert t or (r < 5 and q != 40.0 and q == q)  # missing row, far bins, NaN: fresh
        values = rng.uniform(size=int(todo.sum()))
        for r, q, v in zip(si[todo].tolist(), qty[todo].tolist(), values.tolist(), strict=True):
            truth[(r, q)] = v
        memo.store(token, si, todo, values)
    # a push replaces row 2 and adds one: row 2 is scored again, the others are kept
    pushed = memo.derive(7, np.array([2]))
    (out,), todo, _ = pushed.lookup(model, np.array([0, 1, 2, 3, 4, 5, 6]), np.ones(7))
    assert todo.tolist() == [False, False, True, False, False, True, True]
    assert out[0] == truth[(0, 1.0)]
