"""The perfect-foresight bound: exact on tiny days, LP below MIP, never above a real plan."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from routing import Network, Node, Order, OrderLine, Policy, StockRow, route
from routing.ratings import rate_realised, shipment_cost
from simulation.backtest.bound import (
    UNLIMITED,
    BoundDay,
    build_day,
    gap_closed,
    integral_plan,
    price,
    solve_bound,
    summarise,
)

NOW = datetime(2024, 5, 8, 15, 0, tzinfo=UTC)  # a Wednesday


def random_day(rng: np.random.Generator) -> BoundDay:
    """A tiny day: 1-3 orders, 1-2 lines each, 2-3 nodes, stock and capacity that bind."""
    n_nodes, n_skus = int(rng.integers(2, 4)), 2
    line_order, line_qty, line_sku, parts = [], [], [], []
    n_orders = int(rng.integers(1, 4))
    for o in range(n_orders):
        for _ in range(int(rng.integers(1, 3))):
            line_order.append(o)
            line_qty.append(int(rng.integers(1, 3)))
            line_sku.append(int(rng.integers(0, n_skus)))
            parts.append(int(rng.integers(1, 3)))
    p_line, p_node = [], []
    for li in range(len(line_qty)):
        nodes = rng.choice(n_nodes, size=int(rng.integers(1, n_nodes + 1)), replace=False)
        for n in sorted(nodes):
            p_line.append(li)
            p_node.append(int(n))
    n_pairs = len(p_line)
    # one fee per (order, node) parcel
    fee_on = rng.uniform(2.0, 8.0, (n_orders, n_nodes))
    lo = np.asarray(line_order)
    return BoundDay(
        line_order=lo,
        line_qty=np.asarray(line_qty),
        line_sku=np.asarray(line_sku),
        line_max_parts=np.asarray(parts),
        order_max_shipments=np.where(rng.random(n_orders) < 0.3, 1, UNLIMITED),
        pair_line=np.asarray(p_line),
        pair_node=np.asarray(p_node),
        pair_unit_cost=rng.uniform(0.5, 6.0, n_pairs),
        pair_part_cost=rng.uniform(0.0, 5.0, n_pairs),
        pair_ship_cost=fee_on[lo[p_line], p_node],
        pair_late_days=np.zeros(n_pairs),
        stock=rng.integers(0, 3, (n_nodes, n_skus)),
        capacity=np.where(rng.random(n_nodes) < 0.4, rng.integers(0, 2, n_nodes), UNLIMITED),
        unfilled_cost=float(rng.uniform(5.0, 30.0)),
    )


def brute_force(day: BoundDay) -> float:
    """Cheapest feasible plan by enumerating every quantity at every pair."""
    ranges = [range(int(day.line_qty[li]) + 1) for li in day.pair_line]
    best = np.inf
    for x in itertools.product(*ranges):
        try:
            best = min(best, price(day, np.asarray(x, dtype=float)).total)
        except ValueError:
            continue
    return float(best)


def test_mip_matches_brute_force_and_lp_is_below() -> None:
    rng = np.random.default_rng(5)
    checked = 0
    for _ in range(60):
        day = random_day(rng)
        if np.prod([q + 1 for q in day.line_qty[day.pair_line]]) > 5000:
            continue
        exact = brute_force(day)
        mip = solve_bound(day, start_per_line=99)
        lp = solve_bound(day, relax=True, start_per_line=99)
        # starting from each line's cheapest pair only: pricing and fixing must recover both
        priced = solve_bound(day, start_per_line=1)
        lp_priced = solve_bound(day, relax=True, start_per_line=1)
        assert mip.method == "mip" and lp.method == "lp" and priced.method == "mip"
        assert mip.value == pytest.approx(exact, abs=1e-6)
        assert priced.value == pytest.approx(exact, abs=1e-6)
        assert lp_priced.value == pytest.approx(lp.value, abs=1e-6)
        assert mip.costs.total == pytest.approx(exact, abs=1e-6)  # the plan behind it is priced
        assert lp.value <= mip.value + 1e-6
        price(day, mip.plan)  # the MIP plan is one the world allows
        checked += 1
    assert checked >= 30


def test_capacity_and_stock_bind() -> None:
    """Two single-unit orders want the cheap node; it holds one unit, then has one parcel."""
    base: dict[str, Any] = dict(
        line_order=np.array([0, 1]),
        line_qty=np.array([1, 1]),
        line_sku=np.array([0, 0]),
        line_max_parts=np.array([1, 1]),
        order_max_shipments=np.array([UNLIMITED, UNLIMITED]),
        pair_line=np.array([0, 0, 1, 1]),
        pair_node=np.array([0, 1, 0, 1]),
        pair_unit_cost=np.array([1.0, 5.0, 1.0, 5.0]),
        pair_part_cost=np.zeros(4),
        pair_ship_cost=np.zeros(4),
        pair_late_days=np.zeros(4),
        unfilled_cost=100.0,
    )
    free = BoundDay(**base, stock=np.array([[5], [5]]), capacity=np.array([UNLIMITED, UNLIMITED]))
    assert solve_bound(free).value == pytest.approx(2.0)
    short = BoundDay(**base, stock=np.array([[1], [5]]), capacity=np.array([UNLIMITED, UNLIMITED]))
    assert solve_bound(short).value == pytest.approx(6.0)
    tight = BoundDay(**base, stock=np.array([[5], [5]]), capacity=np.array([1, 0]))
    res = solve_bound(tight)
    assert res.value == pytest.approx(101.0) and res.costs.unfilled_units == 1


def test_time_limit_falls_back_to_lp_and_says_so() -> None:
    day = random_day(np.random.default_rng(11))
    res = solve_bound(day, time_limit=0.0)
    assert res.method == "lp" and res.incumbent is None and "LP" in res.status
    assert res.value <= solve_bound(day).value + 1e-6


# --- built from routing objects: same fences and cost functions as the router ---------


def _network(stock: dict[tuple[str, str], float], capacity: int | None = None) -> Network:
    nodes = [
        Node("DC-1", "dc", 40.7, -74.0, handling_cost=1.5, daily_capacity=capacity),
        Node("ST-1", "store", 40.8, -73.9, handling_cost=3.0, daily_capacity=capacity),
        Node("ST-2", "store", 41.9, -87.6, handling_cost=3.0, ships_groups=frozenset({"home"})),
        Node("ST-3", "store", 40.75, -73.95, enabled=False),
    ]
    return Network(nodes, [StockRow(n, s, q) for (n, s), q in stock.items()])


def _orders(rng: np.random.Generator, n: int) -> list[Order]:
    out = []
    for i in range(n):
        lines = tuple(
            OrderLine(
                str(j + 1),
                f"SKU-{int(rng.integers(1, 4))}",
                float(rng.integers(1, 3)),
                product_group=str(rng.choice(["home", "apparel"])),
                weight_kg=float(rng.uniform(0.2, 4.0)),
            )
            for j in range(int(rng.integers(1, 4)))
        )
        lat, lon = float(rng.uniform(38, 42)), float(rng.uniform(-90, -72))
        out.append(Order(f"O-{i}", "web", lat, lon, lines))
    return out


def _transit(order: Order, node_id: str) -> float:
    """A deterministic 'realised' delivery: farther and store-shipped parcels are slower."""
    base = 2.0 if node_id.startswith("DC") else 4.0
    return base + abs((order.dest_lon or 0.0) + 80.0) / 4.0


def test_build_day_prices_with_the_routing_cost_functions() -> None:
    truth = _network({("DC-1", "SKU-1"): 3, ("ST-1", "SKU-1"): 1, ("ST-2", "SKU-1"): 4})
    order = Order("A", "web", 41.0, -80.0, (OrderLine("1", "SKU-1", 2, "home", 1.5),))
    day, index = build_day([order], truth, now=NOW, delivery_days=_transit)
    rules = Policy.default().rules("home")
    # ST-3 is disabled; every enabled node with stock is a candidate (ST-1's single unit may
    # serve part of a splittable line)
    assert sorted(index.node_ids[n] for n in day.pair_node) == ["DC-1", "ST-1", "ST-2"]
    p = index.pair_of[("A", "1", "ST-2")]
    dist = 0.0
    from routing.fences import node_distances

    dist = node_distances({"ST-2": truth.nodes["ST-2"]}, order)["ST-2"] or 0.0
    want = rate_realised(
        weight_kg=1.5,
        handling_cost=3.0,
        distance_km=dist,
        rules=rules,
        delivery_days=_transit(order, "ST-2"),
        promise_days=rules.promise_days,
    )
    assert day.pair_unit_cost[p] == pytest.approx(want.per_unit_shipping)
    assert day.pair_part_cost[p] == pytest.approx(want.fixed)
    assert day.pair_late_days[p] == pytest.approx(max(_transit(order, "ST-2") - 5.0, 0.0))
    assert day.pair_ship_cost[p] == pytest.approx(shipment_cost(dist, rules, 3.0))
    assert day.stock[day.pair_node[p], day.line_sku[0]] == 4


def test_group_fence_applies() -> None:
    truth = _network({("ST-2", "SKU-1"): 4})
    order = Order("A", "web", 41.0, -80.0, (OrderLine("1", "SKU-1", 1, "apparel"),))
    day, _ = build_day([order], truth, now=NOW, delivery_days=_transit)
    assert len(day.pair_line) == 0
    res = solve_bound(day)
    assert res.costs.unfilled_units == 1 and res.value == pytest.approx(day.unfilled_cost)


@pytest.mark.parametrize("mode", ["distance", "cost", "priority", "high_stock"])
def test_a_policy_never_beats_the_bound(mode: str) -> None:
    """Route on stale books, let the true shelf refuse what it cannot give: never below."""
    rng = np.random.default_rng(3)
    skus = ["SKU-1", "SKU-2", "SKU-3"]
    true_stock = {(n, s): float(rng.integers(0, 4)) for n in ("DC-1", "ST-1", "ST-2") for s in skus}
    books = {k: v + float(rng.integers(0, 3)) for k, v in true_stock.items()}
    orders = _orders(rng, 12)
    truth = _network(true_stock, capacity=6)
    day, index = build_day(orders, truth, now=NOW, delivery_days=_transit)
    bound = solve_bound(day)

    shelf = dict(true_stock)
    taken: dict[str, int] = {}
    rows: list[tuple[str, str, str, float]] = []
    rejections = 0
    for o in orders:
        nodes = [
            Node(
                n.node_id,
                n.node_type,
                n.lat,
                n.lon,
                n.enabled,
                n.priority,
                n.ships_groups,
                n.handling_cost,
                daily_capacity=n.daily_capacity,
                orders_today=taken.get(n.node_id, 0),
            )
            for n in truth.nodes.values()
        ]
        book = Network(nodes, [StockRow(n, s, q) for (n, s), q in books.items() if q > 0])
        plan = route(o, book, mode=mode, now=NOW)  # type: ignore[arg-type]
        for a in plan.allocations:
            key = (a.node_id, a.sku)
            books[key] -= a.qty
            if shelf.get(key, 0.0) >= a.qty:  # the shelf has it: ship
                shelf[key] -= a.qty
                rows.append((o.order_id, a.line_id, a.node_id, a.qty))
            else:  # rejected and not rerouted: the line goes unfilled
                rejections += 1
        for n in {r[2] for r in rows if r[0] == o.order_id}:
            taken[n] = taken.get(n, 0) + 1
    realised = price(day, index.plan(rows, len(day.pair_line)))
    reroute = rejections * Policy.default().rules(None).reroute_cost
    assert realised.total + reroute >= bound.value - 1e-6
    assert bound.method == "mip"


def test_gap_closed_and_summary() -> None:
    assert gap_closed(policy=9.0, baseline=10.0, bound=8.0) == pytest.approx(0.5)
    assert gap_closed(policy=10.0, baseline=10.0, bound=10.0) is None
    day = random_day(np.random.default_rng(2))
    res = [solve_bound(day), solve_bound(day, relax=True)]
    s = summarise(res)
    assert s["method"] == "mixed" and s["days_mip"] == 1 and s["days_lp"] == 1
    assert s["cost_per_order"] == pytest.approx(sum(r.value for r in res) / (2 * day.n_orders))


def test_pricing_recovers_the_full_problem_on_a_larger_day() -> None:
    """Start from one pair per line: the priced LP and MIP equal the ones over every pair."""
    rng = np.random.default_rng(8)
    days = [random_day(rng) for _ in range(25)]
    # stack tiny days into one with shared nodes so parcels, stock and capacity interact
    off_o = np.cumsum([0] + [d.n_orders for d in days[:-1]])
    n_nodes = 3
    idx = [i for i, d in enumerate(days) if d.stock.shape[0] == n_nodes]
    assert len(idx) >= 5
    off_l = dict(zip(idx, np.cumsum([0] + [len(days[i].line_qty) for i in idx[:-1]]), strict=True))
    day = BoundDay(
        line_order=np.concatenate([days[i].line_order + off_o[i] for i in idx]),
        line_qty=np.concatenate([days[i].line_qty for i in idx]),
        line_sku=np.concatenate([days[i].line_sku for i in idx]),
        line_max_parts=np.concatenate([days[i].line_max_parts for i in idx]),
        order_max_shipments=np.concatenate([days[i].order_max_shipments for i in range(len(days))]),
        pair_line=np.concatenate([days[i].pair_line + off_l[i] for i in idx]),
        pair_node=np.concatenate([days[i].pair_node for i in idx]),
        pair_unit_cost=np.concatenate([days[i].pair_unit_cost for i in idx]),
        pair_part_cost=np.concatenate([days[i].pair_part_cost for i in idx]),
        pair_ship_cost=np.concatenate([days[i].pair_ship_cost for i in idx]),
        pair_late_days=np.concatenate([days[i].pair_late_days for i in idx]),
        stock=np.full((n_nodes, 2), 4),
        capacity=np.array([4, UNLIMITED, 6]),
        unfilled_cost=25.0,
    )
    full_lp = solve_bound(day, relax=True, start_per_line=99)
    assert solve_bound(day, relax=True, start_per_line=1).value == pytest.approx(full_lp.value)
    full = solve_bound(day, start_per_line=99)
    priced = solve_bound(day, start_per_line=1)
    assert full.method == priced.method == "mip"
    assert priced.value == pytest.approx(full.value, rel=2e-4)
    assert full_lp.value <= full.value + 1e-6


@pytest.mark.parametrize("relax", [False, True])
def test_integral_plan_is_playable(relax: bool) -> None:
    """From the MIP plan or a fractional LP plan: whole units, within shelf and capacity."""
    rng = np.random.default_rng(21)
    for _ in range(15):
        day = random_day(rng)
        res = solve_bound(day, relax=relax)
        x = integral_plan(day, res.plan)
        costs = price(day, x)  # raises on any broken limit
        assert costs.total >= res.value - 1e-6
        if res.method == "mip":
            assert x == pytest.approx(res.plan)


def test_delivery_days_in_one_call_match_per_parcel() -> None:
    rng = np.random.default_rng(6)
    truth = _network({(n, s): 3.0 for n in ("DC-1", "ST-1", "ST-2") for s in ("SKU-1", "SKU-2")})
    orders = _orders(rng, 6)
    calls: list[int] = []

    def many(positions: Sequence[int], nodes: Sequence[str]) -> list[float]:
        calls.append(len(positions))
        return [_transit(orders[o], n) for o, n in zip(positions, nodes, strict=True)]

    one, _ = build_day(orders, truth, now=NOW, delivery_days=_transit)
    batch, _ = build_day(orders, truth, now=NOW, delivery_days_many=many)
    assert len(calls) == 1
    assert batch.pair_part_cost == pytest.approx(one.pair_part_cost)
    assert batch.pair_late_days == pytest.approx(one.pair_late_days)
    with pytest.raises(ValueError, match="exactly one"):
        build_day(orders, truth, now=NOW)
