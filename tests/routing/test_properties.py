"""Property tests (hypothesis): safety invariants of every plan, in every mode."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import product
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routing_helpers import NOW

from routing import (
    MODES,
    Network,
    Node,
    NodeCalendar,
    Order,
    OrderLine,
    Prediction,
    PredictionArrays,
    StockRow,
    candidate_pairs,
    plan_to_dict,
    policy_from_dict,
    route,
)
from routing.allocation import total_cost
from routing.fences import node_distances

SKUS = ["A", "B", "C"]


@st.composite
def worlds(draw: Any) -> tuple[Network, Order, Any, dict[tuple[str, str], Prediction]]:
    n_nodes = draw(st.integers(1, 6))
    nodes = []
    for i in range(n_nodes):
        closed = draw(st.booleans()) and draw(st.booleans())
        lat = draw(st.one_of(st.none(), st.floats(25, 48)))
        nodes.append(
            Node(
                node_id=f"N{i}",
                node_type=draw(st.sampled_from(["dc", "store", "3pl"])),
                lat=lat,
                lon=None if lat is None else -90.0,
                enabled=draw(st.booleans()) or draw(st.booleans()),
                priority=draw(st.integers(0, 3)),
                handling_cost=draw(st.floats(0, 3)),
                daily_capacity=draw(st.one_of(st.none(), st.integers(0, 3))),
                orders_today=draw(st.integers(0, 3)),
                calendar=NodeCalendar(holidays=frozenset([NOW.date()])) if closed else None,
                ships_groups=draw(st.one_of(st.none(), st.just(frozenset({"g1"})))),
            )
        )
    rows = []
    for n, sku in product(nodes, SKUS):
        if draw(st.booleans()):
            rows.append(
                StockRow(
                    n.node_id,
                    sku.lower() if draw(st.booleans()) else sku,
                    float(draw(st.integers(0, 6))),
                    draw(st.booleans()) or draw(st.booleans()),
                )
            )
    lines = tuple(
        OrderLine(
            str(i),
            draw(st.sampled_from(SKUS)),
            float(draw(st.integers(1, 5))),
            product_group=draw(st.sampled_from([None, "g1", "g2"])),
            weight_kg=draw(st.floats(0.1, 5)),
            unit_price=draw(st.floats(1, 50)),
        )
        for i in range(draw(st.integers(1, 4)))
    )
    order = Order(
        "P",
        draw(st.sampled_from(["web", "pos"])),
        40.0,
        -80.0,
        lines,
        allow_partial=draw(st.booleans()),
        pickup_node_id=draw(st.one_of(st.none(), st.just("N0"))),
    )
    policy = policy_from_dict(
        {
            "max_shipments": draw(st.one_of(st.none(), st.integers(1, 3))),
            "channels": {"pos": ["store"]},
            "never_split_groups": draw(st.sampled_from([[], ["g1"]])),
            "ship_together_groups": draw(st.sampled_from([[], ["g2"]])),
            "defaults": {"split_value_threshold": draw(st.sampled_from([0.0, 20.0]))},
            "capacity": draw(st.sampled_from(["fence", "penalise"])),
        }
    )
    network = Network(nodes, rows)
    preds = {
        pair: Prediction(
            draw(st.floats(0, 1)), p50 := draw(st.floats(0.5, 6)), p50 * draw(st.floats(1, 2))
        )
        for pair in candidate_pairs(order, network, policy, NOW)
    }
    return network, order, policy, preds


def _check(network: Network, order: Order, policy: Any, preds: dict, mode: str) -> dict:  # type: ignore[type-arg]
    plan = route(order, network, mode=mode, policy=policy, predictions=preds, now=NOW)  # type: ignore[arg-type]
    d = plan_to_dict(plan)
    eligible = set(candidate_pairs(order, network, policy, NOW))
    used: dict[tuple[str, str], float] = defaultdict(float)
    per_line: dict[str, float] = defaultdict(float)
    for a in [*d["allocations"], *d["best_effort"]]:
        assert a["qty"] > 0
    for a in d["allocations"]:
        assert (a["line_id"], a["node_id"]) in eligible, "allocated to a fenced node"
        used[(a["node_id"], a["sku"].casefold())] += a["qty"]
        per_line[a["line_id"]] += a["qty"]
    for (node, sku), q in used.items():
        assert q <= network.available(node, sku) + 1e-9, "allocated more than available"
    if d["shippable"]:
        for ln in order.lines:
            assert abs(per_line[ln.line_id] - ln.qty) < 1e-9
    else:
        assert d["unallocated"]
    cap = policy.max_shipments
    if cap is not None:
        assert d["shipments"] <= cap
    for ln in order.lines:
        if policy.rules(ln.product_group).never_split:
            assert len({a["node_id"] for a in d["allocations"] if a["line_id"] == ln.line_id}) <= 1
    return d


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(MODES))
def test_plan_invariants(world: Any, mode: str) -> None:
    network, order, policy, preds = world
    a = _check(network, order, policy, preds, mode)
    b = _check(network, order, policy, preds, mode)
    assert a == b, "same input must give the same plan"


@settings(max_examples=80, deadline=None)
@given(worlds())
def test_exact_methods_match_brute_force(world: Any) -> None:
    """Branch-and-bound and the subset DP both find the exhaustive-enumeration optimum."""
    import importlib

    from routing.allocation import Problem, solve
    from routing.partition import solve_partition

    network, order, policy, preds = world
    captured: list[Problem] = []
    # ``routing.route`` the attribute is the function; the module is reached by its name.
    engine = importlib.import_module("routing.route")
    real_dp, real_bb = engine.solve_partition, engine.solve

    def spy_dp(p: Problem, *a: Any, **kw: Any) -> Any:
        captured.append(p)
        return real_dp(p, *a, **kw)

    def spy_bb(p: Problem, **kw: Any) -> Any:
        captured.append(p)
        return real_bb(p, **kw)

    engine.solve_partition, engine.solve = spy_dp, spy_bb  # type: ignore[assignment]
    try:
        route(order, network, mode="predictive", policy=policy, predictions=preds, now=NOW)
    finally:
        engine.solve_partition, engine.solve = real_dp, real_bb  # type: ignore[assignment]
    p = captured[0]
    best = _brute_force(p)
    tol = 1e-6 * max(1.0, abs(best))
    bb = solve(p, max_states=10**6)
    assert bb.optimal and abs(bb.cost - best) < tol
    assert abs(total_cost(p, bb.choice) - bb.cost) < tol
    dp = solve_partition(p)
    if dp is not None:
        assert abs(dp.cost - best) < tol
        assert abs(total_cost(p, dp.choice) - dp.cost) < tol


def _partition_problem(
    n_units: int, n_nodes: int, seed: int, cap: int | None, density: float = 0.6
) -> Any:
    """Every unit served whole by one node or left unmet: what the subset DP takes; each
    node stocks each unit's SKU with probability ``density``."""
    import random

    from routing.allocation import UNMET_PENALTY, Option, Part, Problem

    rng = random.Random(seed)
    nodes = [f"N{i:03d}" for i in range(n_nodes)]
    fixed = {n: rng.choice([rng.uniform(2, 9), 4.0]) for n in nodes}
    units, stock = [], {}
    for u in range(n_units):
        opts = []
        for n in nodes:
            if rng.random() < density:
                parts = (Part(u, n, 1.0),)
                cost = rng.choice([rng.uniform(1, 10), 5.0])  # repeated values make ties
                use = (((n, f"s{u}"), 1.0),)
                opts.append(Option(parts, cost, (n,), 0.0, use, Option.make_key(parts)))
                stock[(n, f"s{u}")] = 2.0
        opts.append(Option((), UNMET_PENALTY, (), 1.0, (), ()))
        units.append(opts)
    return Problem(units, fixed, stock, cap)


def test_subset_dp_arrays_match_the_loop() -> None:
    """The numpy DP (with dominated nodes dropped) chooses what the pure-Python loop does."""
    import routing.partition as dp

    grid = (
        (4, 12, 6, 0.6),
        (7, 40, 4, 0.6),
        (9, 60, 2, 0.6),
        (10, 80, 1, 0.6),
        (8, 60, 3, 0.2),  # sparse stock: most nodes serve a few units
        (12, 50, 1, 0.2),
        (6, 30, 3, 1.0),  # every node serves every unit
    )
    for n_units, n_nodes, seeds, density in grid:
        for seed in range(seeds):
            for cap in (None, 1, 2, 3):
                p = _partition_problem(n_units, n_nodes, seed, cap, density)
                fast = dp.solve_partition(p)
                saved, dp._np = dp._np, None
                try:
                    slow = dp.solve_partition(p)
                finally:
                    dp._np = saved
                assert fast is not None and slow is not None
                assert fast.choice == slow.choice and fast.states == slow.states
                assert abs(fast.cost - slow.cost) < 1e-9


def _brute_force(p: Any) -> float:
    """Least total cost over every combination of options (stock and shipment cap checked)."""
    best = float("inf")
    for choice in product(*(range(len(o)) for o in p.units)):
        left = dict(p.stock)
        nodes: set[str] = set()
        ok = True
        for u, i in enumerate(choice):
            o = p.units[u][i]
            for k, q in o.use:
                left[k] -= q
                ok &= left[k] >= -1e-9
            nodes.update(o.nodes)
        if ok and (p.max_shipments is None or len(nodes) <= p.max_shipments):
            best = min(best, total_cost(p, choice))
    return best


def test_sparse_subset_dp_matches_dense_and_brute_force() -> None:
    """The top-down and bottom-up DPs over the blocks worth keeping find the dense DP's
    optimum, and all of them the exhaustive one, with ties (repeated costs), shipment caps and units no node serves."""
    import routing.partition as dp

    sparse_runs = 0
    for n_units, n_nodes, density, seed, cap in product(
        (1, 2, 4, 5), (3, 6, 20), (0.1, 0.3, 0.7), range(3), (None, 1, 2, 3)
    ):
        p = _partition_problem(n_units, n_nodes, seed * 7 + n_units, cap, density)
        fast = dp.solve_partition(p)
        saved = dp.SPARSE_SUBSETS
        dp.SPARSE_SUBSETS = -1  # nothing fits: the dense DP
        try:
            dense = dp.solve_partition(p)
        finally:
            dp.SPARSE_SUBSETS = saved
        assert fast is not None and dense is not None
        rows, pen, pen_pick = dp._parse(p)  # type: ignore[misc]
        at = [dp._cheapest(*row) for row in rows]
        sparse_cap = cap if cap is not None and cap < n_units else None
        sparse_runs += dp._solve_sparse(at, pen, pen_pick, p.fixed, sparse_cap) is not None
        saved = dp.SPARSE_BLOCKS
        dp.SPARSE_BLOCKS = -1  # without a cap: the bottom-up DP over the kept blocks
        try:
            pairs = dp.solve_partition(p)
        finally:
            dp.SPARSE_BLOCKS = saved
        tol = 1e-6 * max(1.0, abs(dense.cost))
        for got in (fast, pairs):
            assert got is not None
            assert abs(got.cost - dense.cost) < tol
            assert abs(total_cost(p, got.choice) - got.cost) < tol
        if n_units <= 4 and n_nodes <= 6:
            assert abs(_brute_force(p) - fast.cost) < tol
    assert sparse_runs > 100  # the sparse path really ran (most of these fit its budget)


def test_subset_blocks_arrays_match_the_loop() -> None:
    """Every subset's cheapest node and its cost, from the array entries, equal the loop's
    (dominated nodes dropped, ties to the lowest node), with many ties and sparse stock."""
    import random

    import routing.partition as dp

    for n_units, n_nodes, density, seed in product(
        (3, 6, 9), (5, 40, 120), (0.15, 0.5, 1.0), range(3)
    ):
        rng = random.Random(seed * 1000 + n_units * 10 + n_nodes)
        cost = [
            [
                float(rng.choice([1, 2, 3])) if rng.random() < density else math.inf
                for _ in range(n_nodes)
            ]
            for _ in range(n_units)
        ]
        fixed = [float(rng.choice([2, 4])) for _ in range(n_nodes)]
        size = 1 << n_units
        fast = dp._blocks(cost, fixed, size)
        saved, dp._np = dp._np, None
        try:
            slow = dp._blocks(cost, fixed, size)
        finally:
            dp._np = saved
        assert fast[0] == slow[0]
        finite = [m for m in range(size) if math.isfinite(slow[0][m])]
        assert [fast[1][m] for m in finite] == [slow[1][m] for m in finite]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(0, 5000)),  # distance
            st.floats(0, 5),  # handling cost
            st.one_of(
                st.none(), st.tuples(st.floats(-0.5, 1.5), st.floats(0, 9), st.floats(0, 12))
            ),
            st.sampled_from([0.0, 0.0, 0.4, 1.0, 2.5]),  # queue days
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([-1.0, 0.0, 0.5, 3.0, 5.0]),
    st.floats(0, 30),
)
def test_rating_arrays_are_rate_pair_bit_for_bit(pairs: Any, promise: float, weight: float) -> None:
    """The rating arrays a large order is priced with equal ``rate_pair`` exactly, predicted
    or not, known distance or not, waiting or not."""
    import numpy as np

    from routing.ratings import LineRates, rate_line, rate_pair

    rules = policy_from_dict(None).rules(None)
    preds = [p for _, _, p, _ in pairs]
    rates = LineRates(
        [f"N{k}" for k in range(len(pairs))],
        [d for d, _, _, _ in pairs],
        rate_line(
            weight_kg=weight,
            handling_cost=np.array([h for _, h, _, _ in pairs]),
            distance_km=[d for d, _, _, _ in pairs],
            predicted=np.array([p is not None for p in preds]),
            p_stockout=np.array([p[0] if p else 0.0 for p in preds]),
            days_p50=np.array([p[1] if p else 0.0 for p in preds]),
            days_p90=np.array([p[2] if p else 0.0 for p in preds]),
            rules=rules,
            promise_days=promise,
            queue=np.array([w for _, _, _, w in pairs]),
        ),
    )
    for k, (d, h, p, w) in enumerate(pairs):
        want = rate_pair(
            weight_kg=weight,
            handling_cost=h,
            distance_km=d,
            prediction=Prediction(*p) if p else None,
            rules=rules,
            promise_days=promise,
            queue=w,
        )
        assert rates.rating(k) == want


@st.composite
def tied_worlds(draw: Any) -> tuple[Network, Order, Any, dict[tuple[str, str], Prediction]]:
    """Whole-line orders on look-alike nodes: ties and shipment caps everywhere."""
    n_nodes = draw(st.integers(2, 8))
    nodes = [
        Node(
            node_id=f"N{i}",
            node_type="dc",
            lat=draw(st.sampled_from([40.0, 41.0])),
            lon=-80.0,
            handling_cost=draw(st.sampled_from([1.0, 2.0])),
        )
        for i in range(n_nodes)
    ]
    rows = [
        StockRow(n.node_id, sku, float(draw(st.integers(0, 2))))
        for n in nodes
        for sku in SKUS
        if draw(st.booleans()) or draw(st.booleans())
    ]
    lines = tuple(OrderLine(str(i), sku, 1.0) for i, sku in enumerate(draw(st.permutations(SKUS))))[
        : draw(st.integers(1, 3))
    ]
    order = Order("T", "web", 40.5, -80.0, lines)
    policy = policy_from_dict({"max_shipments": draw(st.sampled_from([None, 1, 2]))})
    network = Network(nodes, rows)
    preds = {
        pair: Prediction(draw(st.sampled_from([0.0, 0.2])), 2.0, 3.0)
        for pair in candidate_pairs(order, network, policy, NOW)
    }
    return network, order, policy, preds


@settings(max_examples=80, deadline=None)
@given(st.one_of(worlds(), tied_worlds()))
def test_one_node_options_as_arrays_plan_like_option_objects(world: Any) -> None:
    """The subset DP and the runner-up scan read a line's one-node options as arrays; the
    plan and its explanation are the ones the same options as objects give."""
    import importlib

    network, order, policy, preds = world
    engine = importlib.import_module("routing.route")
    real = engine.line_options
    fast = plan_to_dict(route(order, network, policy=policy, predictions=preds, now=NOW))
    engine.line_options = lambda *a, **kw: list(real(*a, **kw))  # type: ignore[attr-defined]
    try:
        slow = plan_to_dict(route(order, network, policy=policy, predictions=preds, now=NOW))
    finally:
        engine.line_options = real  # type: ignore[attr-defined]
    assert fast == slow


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(MODES), st.integers(0, 4))
def test_top_ranking_lists_a_prefix_of_the_full_one(world: Any, mode: str, top: int) -> None:
    """``ranking=top`` changes what is listed, never the plan or a listed entry: the best
    ``top`` eligible entries of the full ranking, then every allocated node below them at its
    own rank, then the ``top`` nearest fenced ones; the counts cover every candidate."""
    network, order, policy, preds = world
    kw: Any = {"mode": mode, "policy": policy, "predictions": preds, "now": NOW}
    full = plan_to_dict(route(order, network, **kw))
    short = plan_to_dict(route(order, network, ranking=top, **kw))
    assert {k: v for k, v in short.items() if k != "ranking"} == {
        k: v for k, v in full.items() if k != "ranking"
    }
    allocated = {(a["line_id"], a["node_id"]) for a in [*full["allocations"], *full["best_effort"]]}
    for f, s in zip(full["ranking"], short["ranking"], strict=True):
        elig = [e for e in f["candidates"] if e["eligible"]]
        fenced = [e for e in f["candidates"] if not e["eligible"]]
        assert f["listed_all"] and f["eligible_count"] == s["eligible_count"] == len(elig)
        assert f["fenced_count"] == s["fenced_count"]
        assert sum(s["fenced_count"].values()) == len(fenced)
        want = elig[:top] + [e for e in elig[top:] if (f["line_id"], e["node_id"]) in allocated]
        km = node_distances(network.nodes, order)  # unrounded
        nearest = sorted(
            fenced, key=lambda e: (km[e["node_id"]] is None, km[e["node_id"]] or 0.0, e["node_id"])
        )
        want_fenced = fenced if len(fenced) <= top else nearest[:top]
        if s["listed_all"]:
            assert len(elig) <= top and len(fenced) <= top
        assert [e for e in s["candidates"] if e["eligible"]] == want
        assert sorted(
            (e for e in s["candidates"] if not e["eligible"]), key=lambda e: e["node_id"]
        ) == sorted(want_fenced, key=lambda e: e["node_id"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(MODES), st.randoms(use_true_random=False))
def test_prediction_arrays_plan_like_the_mapping(world: Any, mode: str, rnd: Any) -> None:
    """Predictions handed over as arrays per line give the plan a dict of ``Prediction``
    objects gives, whether the arrays hold the line's nodes in its order, shuffled, or (in the
    modes that allow it) only some of them."""
    network, order, policy, preds = world
    if mode != "predictive" and preds and rnd.random() < 0.5:
        preds = {k: v for k, v in preds.items() if rnd.random() < 0.6}
    arrays = PredictionArrays()
    for ln in order.lines:
        pairs = [(nid, p) for (lid, nid), p in preds.items() if lid == ln.line_id]
        if rnd.random() < 0.5:
            rnd.shuffle(pairs)
        arrays.add(
            ln.line_id,
            [n for n, _ in pairs],
            np.array([p.p_stockout for _, p in pairs]),
            np.array([p.days_p50 for _, p in pairs]),
            np.array([p.days_p90 for _, p in pairs]),
        )
    assert dict(arrays) == preds
    kw: Any = {"mode": mode, "policy": policy, "now": NOW}
    want = plan_to_dict(route(order, network, predictions=preds, **kw))
    assert plan_to_dict(route(order, network, predictions=arrays, **kw)) == want
