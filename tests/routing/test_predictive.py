"""Predictive ratings and allocation behaviour: the expected-cost blend drives the choice."""

from __future__ import annotations

import math

import pytest
from routing_helpers import NOW, net, order

from routing import (
    Prediction,
    PredictionsRequired,
    UnknownMode,
    candidate_pairs,
    network_from_dict,
    order_from_dict,
    plan_to_dict,
    policy_from_dict,
    route,
)
from routing.errors import InvalidNetwork, InvalidOrder, InvalidPolicy
from routing.ratings import congestion_cost, cutoff_wait_days, lateness, queue_days

TWO = [{"id": "A", "lat": 40.7, "lon": -74.0}, {"id": "B", "lat": 40.6, "lon": -74.1}]


def test_lateness_matches_lognormal_quantiles() -> None:
    p, _ = lateness(3.0, 6.0, 3.0)
    assert p == pytest.approx(0.5)
    p, _ = lateness(3.0, 6.0, 6.0)
    assert p == pytest.approx(0.1)
    p_far, e_far = lateness(3.0, 6.0, 20.0)
    assert p_far < 1e-3 and e_far < 1e-3
    assert lateness(3.0, 6.0, 2.0)[1] > lateness(3.0, 6.0, 4.0)[1] > 0


def test_predictive_requires_predictions_and_known_mode() -> None:
    network = net(TWO, [("A", "X", 1)])
    with pytest.raises(PredictionsRequired, match="candidate_pairs"):
        route(order(("X", 1)), network, mode="predictive", now=NOW)
    with pytest.raises(UnknownMode):
        route(order(("X", 1)), network, mode="fastest", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(PredictionsRequired, match="missing"):
        route(order(("X", 1)), network, mode="predictive", predictions={}, now=NOW)


def test_stockout_risk_moves_the_line_to_the_safer_node() -> None:
    network = net(TWO, [("A", "X", 5), ("B", "X", 5)])
    o = order(("X", 1), dest_lat=40.7, dest_lon=-74.0)
    preds = {("1", "A"): Prediction(0.9, 2, 3), ("1", "B"): Prediction(0.01, 2, 3)}
    plan = plan_to_dict(route(o, network, predictions=preds, now=NOW))
    assert plan["allocations"][0]["node_id"] == "B"
    assert plan["allocations"][0]["p_stockout"] == pytest.approx(0.01)
    ex = plan["explanation"]
    assert "A" in ex["runner_up"] and ex["deltas"]["stockout_risk_cost"] > 0
    assert ex["runner_up_total"] > ex["chosen_total"]


def test_lateness_moves_the_line_to_the_faster_node() -> None:
    network = net(TWO, [("A", "X", 5), ("B", "X", 5)])
    o = order(("X", 1), dest_lat=40.7, dest_lon=-74.0, promise_days=2.0)
    preds = {("1", "A"): Prediction(0.0, 4, 7), ("1", "B"): Prediction(0.0, 1, 1.5)}
    plan = plan_to_dict(route(o, network, predictions=preds, now=NOW))
    assert plan["allocations"][0]["node_id"] == "B"
    a_rank = next(c for c in plan["ranking"][0]["candidates"] if c["node_id"] == "A")
    assert a_rank["p_late"] > 0.8 and a_rank["late_cost"] > 0


def test_queue_wait_starts_at_the_knee_and_grows_a_day_per_day_of_capacity() -> None:
    rules = policy_from_dict({"defaults": {"load_knee": 0.6}}).rules(None)
    assert queue_days(None, rules) == 0.0  # no capacity limit: no queue
    assert queue_days(0.6, rules) == 0.0
    assert queue_days(0.8, rules) == pytest.approx(0.5)
    assert queue_days(1.0, rules) == pytest.approx(1.0)
    assert queue_days(2.5, rules) == pytest.approx(2.5)
    full = policy_from_dict({"defaults": {"load_knee": 1.0}}).rules(None)
    assert queue_days(0.99, full) == 0.0 and queue_days(1.5, full) == pytest.approx(1.5)
    with pytest.raises(InvalidPolicy, match="load_knee"):
        policy_from_dict({"defaults": {"load_knee": 1.5}})


def test_a_node_queued_past_the_promise_loses_the_line() -> None:
    """The models see yesterday's backlog, never today's orders: the node's own queue
    (backlog + orders taken today over capacity) delays its parcels in the ratings."""
    nodes = [
        {"id": "A", "lat": 40.7, "lon": -74.0, "daily_capacity": 10, "orders_today": 4},
        {"id": "B", "lat": 40.6, "lon": -74.1, "daily_capacity": 10},
    ]
    o = order(("X", 1), dest_lat=40.7, dest_lon=-74.0, promise_days=3.0)
    preds = {("1", "A"): Prediction(0.0, 1.5, 2.0), ("1", "B"): Prediction(0.0, 1.6, 2.1)}
    stock = [("A", "X", 5), ("B", "X", 5)]
    pol = policy_from_dict({"defaults": {"congestion_cost": 0}})  # the queue alone
    quiet = plan_to_dict(route(o, net(nodes, stock), predictions=preds, policy=pol, now=NOW))
    assert quiet["allocations"][0]["node_id"] == "A"  # 0.4 of a day ahead: leaves today
    nodes[0]["backlog"] = 16  # two days of work ahead of the next parcel
    busy = plan_to_dict(route(o, net(nodes, stock), predictions=preds, policy=pol, now=NOW))
    assert busy["allocations"][0]["node_id"] == "B"
    a_rank = next(c for c in busy["ranking"][0]["candidates"] if c["node_id"] == "A")
    assert a_rank["days_p50"] == pytest.approx(1.5 + 2.0) and a_rank["late_cost"] > 0
    with pytest.raises(InvalidNetwork, match="backlog"):
        network_from_dict({"nodes": [{"id": "A", "backlog": -1}]})


def test_an_order_after_a_nodes_cutoff_waits_for_the_next_pickup() -> None:
    """The delivery model does not see the order's hour: a parcel ordered after the node's
    carrier cut-off leaves a day later, and a store that has passed its cut-off loses an
    order with a tight promise to a DC that still ships today."""
    nodes = [
        {"id": "DC", "lat": 40.9, "lon": -74.0, "calendar": {"cutoff": "17:00"}},
        {"id": "S", "lat": 40.7, "lon": -74.0, "calendar": {"cutoff": "14:00"}},
    ]
    network = net(nodes, [("DC", "X", 5), ("S", "X", 5)])
    dc, store = network.nodes["DC"], network.nodes["S"]
    assert cutoff_wait_days(dc, NOW) == 0.0 and cutoff_wait_days(store, NOW) == 1.0  # 15:00
    assert cutoff_wait_days(store, NOW.replace(hour=9)) == 0.0
    closed = net(  # open on Mondays only: a Wednesday order after the cut-off ships Monday
        [{"id": "S", "calendar": {"cutoff": "14:00", "weekly_hours": {"mon": ["08:00-18:00"]}}}],
        [("S", "X", 5)],
    )
    assert cutoff_wait_days(closed.nodes["S"], NOW) == 5.0
    o = order(("X", 1), dest_lat=40.7, dest_lon=-74.0, promise_days=2.0)
    preds = {("1", "DC"): Prediction(0.0, 1.3, 1.9), ("1", "S"): Prediction(0.0, 1.1, 1.7)}
    pol = policy_from_dict({"defaults": {"congestion_cost": 0}})
    morning = plan_to_dict(
        route(o, network, predictions=preds, policy=pol, now=NOW.replace(hour=9))
    )
    assert morning["allocations"][0]["node_id"] == "S"
    late = plan_to_dict(route(o, network, predictions=preds, policy=pol, now=NOW))
    assert late["allocations"][0]["node_id"] == "DC"
    s_rank = next(c for c in late["ranking"][0]["candidates"] if c["node_id"] == "S")
    assert s_rank["days_p50"] == pytest.approx(1.1 + 1.0)
    brief = route(o, network, predictions=preds, policy=pol, now=NOW, explain=False)
    assert brief.ranking == () and brief.allocations[0].node_id == "DC"


def test_congestion_keeps_a_filling_node_for_the_orders_that_gain_most() -> None:
    assert congestion_cost(None, 5.0) == 0.0 and congestion_cost(0.5, 0.0) == 0.0
    assert congestion_cost(0.5, 4.0) == pytest.approx(1.0)
    assert congestion_cost(3.0, 4.0) == pytest.approx(4.0)  # capped at a full day
    nodes = [
        {"id": "DC", "lat": 40.7, "lon": -74.0, "daily_capacity": 10, "orders_today": 9},
        {"id": "S", "lat": 40.6, "lon": -74.1},
    ]
    stock = [("DC", "X", 5), ("S", "X", 5)]
    o = order(("X", 1), dest_lat=40.7, dest_lon=-74.0, promise_days=3.0)
    slack = {("1", "DC"): Prediction(0.0, 1.0, 1.5), ("1", "S"): Prediction(0.0, 1.2, 1.8)}
    urgent = {("1", "DC"): Prediction(0.0, 1.0, 1.5), ("1", "S"): Prediction(0.0, 2.5, 4.0)}
    free = policy_from_dict(
        {"defaults": {"late_penalty": 20, "load_knee": 1.0, "congestion_cost": 0}}
    )
    priced = policy_from_dict(
        {"defaults": {"late_penalty": 20, "load_knee": 1.0, "congestion_cost": 3}}
    )

    def node(preds: dict[tuple[str, str], Prediction], pol: object) -> str:
        plan = route(o, net(nodes, stock), predictions=preds, policy=pol, now=NOW)  # type: ignore[arg-type]
        return plan_to_dict(plan)["allocations"][0]["node_id"]  # type: ignore[no-any-return]

    assert node(slack, free) == "DC"  # without a price the first order takes the last places
    assert node(slack, priced) == "S"  # an order with slack leaves them ...
    assert node(urgent, priced) == "DC"  # ... to one the store would make late


def test_consolidation_beats_cheapest_per_line() -> None:
    """Per-shipment cost makes one parcel from DC beat two parcels from the per-line best."""
    nodes = [
        {"id": "DC", "lat": 41.0, "lon": -74.0},
        {"id": "S1", "lat": 40.7, "lon": -74.0},
        {"id": "S2", "lat": 40.7, "lon": -74.0},
    ]
    network = net(nodes, [("DC", "X", 5), ("DC", "Y", 5), ("S1", "X", 5), ("S2", "Y", 5)])
    o = order(("X", 1), ("Y", 1), dest_lat=40.7, dest_lon=-74.0)
    pol = policy_from_dict({"defaults": {"per_shipment_cost": 10}})
    plan = plan_to_dict(route(o, network, mode="cost", policy=pol, now=NOW))
    assert {a["node_id"] for a in plan["allocations"]} == {"DC"} and plan["shipments"] == 1


def test_max_shipments_and_never_split() -> None:
    nodes = [{"id": f"N{i}", "lat": 40.0 + i, "lon": -74.0} for i in range(3)]
    network = net(nodes, [("N0", "X", 2), ("N1", "X", 2), ("N2", "X", 2)])
    o = order(("X", 5), dest_lat=40.0, dest_lon=-74.0)
    assert not plan_to_dict(
        route(o, network, mode="cost", policy=policy_from_dict({"max_shipments": 2}), now=NOW)
    )["shippable"]
    big = plan_to_dict(
        route(
            o,
            network,
            mode="cost",
            policy=policy_from_dict({"search": {"max_parts_per_line": 3}}),
            now=NOW,
        )
    )
    assert big["shippable"] and big["shipments"] == 3
    never = plan_to_dict(
        route(
            o, network, mode="cost", policy=policy_from_dict({"never_split_skus": ["x"]}), now=NOW
        )
    )
    assert not never["shippable"] and never["best_effort"] == []


def test_split_value_threshold_applies_to_both_parts() -> None:
    network = net(TWO, [("A", "X", 4), ("B", "X", 4)])
    pol = policy_from_dict({"defaults": {"split_value_threshold": 25}})
    ok = order(("X", 6), dest_lat=40.7, dest_lon=-74.0, line1={"unit_price": 10.0})  # 4+2 -> 40/20
    plan = plan_to_dict(route(ok, network, mode="cost", policy=pol, now=NOW))
    assert not plan["shippable"]  # the 2-unit part is worth 20 < 25
    pol2 = policy_from_dict({"defaults": {"split_value_threshold": 15}})
    assert plan_to_dict(route(ok, network, mode="cost", policy=pol2, now=NOW))["shippable"]


def test_partial_fulfilment_when_allowed() -> None:
    network = net(TWO, [("A", "X", 2)])
    o = order(("X", 5), ("Y", 1), dest_lat=40.7, dest_lon=-74.0, allow_partial=True)
    plan = plan_to_dict(route(o, network, mode="cost", now=NOW))
    assert plan["shippable"] is False and plan["partial_allowed"] is True
    assert [(a["sku"], a["qty"]) for a in plan["allocations"]] == [("X", 2.0)]
    assert {(u["sku"], u["qty"]) for u in plan["unallocated"]} == {("X", 3.0), ("Y", 1.0)}


def test_ship_together_group_uses_one_node() -> None:
    network = net(TWO, [("A", "X", 5), ("B", "Y", 5), ("B", "X", 5)])
    pol = policy_from_dict({"ship_together_groups": ["kit"]})
    o = order(
        ("X", 1),
        ("Y", 1),
        dest_lat=40.7,
        dest_lon=-74.0,
        line1={"product_group": "kit"},
        line2={"product_group": "kit"},
    )
    plan = plan_to_dict(route(o, network, mode="cost", policy=pol, now=NOW))
    assert {a["node_id"] for a in plan["allocations"]} == {"B"}


def test_plan_is_json_and_deterministic_under_ties() -> None:
    nodes = [{"id": n, "lat": 40.0, "lon": -74.0} for n in ("C", "A", "B")]
    network = net(nodes, [(n, "X", 3) for n in ("C", "A", "B")])
    o = order(("X", 1), dest_lat=40.0, dest_lon=-74.0)
    plan = plan_to_dict(route(o, network, mode="cost", now=NOW))
    assert plan["allocations"][0]["node_id"] == "A"  # ties break by node id
    assert [c["node_id"] for c in plan["ranking"][0]["candidates"]] == ["A", "B", "C"]
    import json

    assert json.loads(json.dumps(plan)) == plan
    assert math.isfinite(plan["total_cost"])


def test_formats_parse_and_reject() -> None:
    network = network_from_dict(
        {
            "nodes": [
                {"id": "A", "type": "store", "ships_groups": "a,b", "timezone": "Europe/Paris"}
            ],
            "stock": [{"node": "A", "sku": "x", "qty": 2}],
        }
    )
    assert network.available("A", "X") == 2 and network.nodes["A"].ships_groups == frozenset(
        {"a", "b"}
    )
    o = order_from_dict(
        {
            "order_id": "A-1",
            "destination": {"country": "US", "postal_code": "10001"},
            "lines": [{"line_id": "1", "sku": "x", "qty": 2}],
        }
    )
    assert o.dest_lat is None and o.channel == "web"
    for bad in (
        {"nodes": [{"id": "A", "type": "shop"}]},
        {"nodes": [{"id": "A"}], "stock": [{"node": "Z", "sku": "x", "qty": 1}]},
        {"nodes": [{"id": "A", "timezone": "Mars/Base"}]},
    ):
        with pytest.raises(InvalidNetwork):
            network_from_dict(bad)
    for bad_o in (
        {"order_id": "1", "lines": []},
        {"order_id": "1", "lines": [{"sku": "x", "qty": 0}]},
        {"order_id": "1", "destination": {"lat": 1}, "lines": [{"sku": "x", "qty": 1}]},
    ):
        with pytest.raises(InvalidOrder):
            order_from_dict(bad_o)
    with pytest.raises(InvalidPolicy, match=r"groups\.toys\.max_distance_km"):
        policy_from_dict({"groups": {"toys": {"max_distance_km": -1}}})
    with pytest.raises(InvalidPolicy, match="unknown"):
        policy_from_dict({"unknown": 1})
    assert candidate_pairs(o, network, None, NOW) == [("1", "A")]
