"""Per-order preferences (property tests): ``ship_complete`` and ``max_shipments`` are honoured
in every mode, on the first route and on a reroute that excludes the rejecting nodes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routing_helpers import NOW
from test_properties import worlds

from routing import MODES, Network, Order, candidate_pairs, plan_to_dict, reroute_order, route


def _prefs(draw: Any) -> tuple[bool, int | None]:
    return draw(st.booleans()), draw(st.one_of(st.none(), st.integers(1, 3)))


def _plan(network: Network, order: Order, policy: Any, preds: dict, mode: str) -> dict:  # type: ignore[type-arg]
    plan = route(order, network, mode=mode, policy=policy, predictions=preds, now=NOW)  # type: ignore[arg-type]
    return plan_to_dict(plan)


def _assert_honoured(d: dict, order: Order) -> None:  # type: ignore[type-arg]
    if order.max_shipments is not None:
        assert d["shipments"] <= order.max_shipments
    if order.ship_complete:
        # one shipment or none: never a partial plan, never two nodes
        assert d["shipments"] <= 1
        assert not d["partial_allowed"]
        if d["allocations"]:
            assert d["shippable"]
            assert len({a["node_id"] for a in d["allocations"]}) == 1


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(MODES), st.data())
def test_preferences_hold_in_every_mode(world: Any, mode: str, data: Any) -> None:
    network, order, policy, _ = world
    ship_complete, cap = data.draw(
        st.tuples(st.booleans(), st.one_of(st.none(), st.integers(1, 3)))
    )
    order = replace(order, ship_complete=ship_complete, max_shipments=cap)
    preds = _predictions(network, order, policy, data)
    d = _plan(network, order, policy, preds, mode)
    _assert_honoured(d, order)
    assert ("ship complete" in d["explanation"]["summary"]) == ship_complete
    if cap is not None:
        assert f"at most {cap} shipment" in d["explanation"]["summary"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.sampled_from(MODES), st.data())
def test_preferences_hold_on_reroute(world: Any, mode: str, data: Any) -> None:
    """A reroute replans the unshipped lines with the budget the shipped ones left."""
    network, order, policy, _ = world
    ship_complete, cap = data.draw(
        st.tuples(st.booleans(), st.one_of(st.none(), st.integers(1, 3)))
    )
    order = replace(order, ship_complete=ship_complete, max_shipments=cap)
    node_ids = sorted(network.nodes)
    rejected = frozenset(data.draw(st.lists(st.sampled_from(node_ids), max_size=2)))
    shipped_nodes = frozenset(data.draw(st.lists(st.sampled_from(node_ids), max_size=2)))
    shipped_lines = frozenset(
        data.draw(st.lists(st.sampled_from([ln.line_id for ln in order.lines]), max_size=1))
    )
    shipped = shipped_nodes if shipped_lines else frozenset()
    again = reroute_order(
        order, exclude=rejected, shipped_line_ids=shipped_lines, shipped_nodes=shipped
    )
    left = {ln.line_id for ln in order.lines} - shipped_lines
    if again is None:  # nothing to route, or no budget left: nothing may be rerouted
        assert (
            not left
            or (cap is not None and len(shipped) >= cap)
            or (ship_complete and bool(shipped))
        )
        return
    assert {ln.line_id for ln in again.lines} == left
    assert again.excluded_nodes >= rejected
    preds = _predictions(network, again, policy, data)
    d = _plan(network, again, policy, preds, mode)
    _assert_honoured(d, again)
    new_nodes = {a["node_id"] for a in d["allocations"]}
    assert not new_nodes & rejected
    if cap is not None:
        assert len(new_nodes | shipped) <= cap
    if ship_complete:
        assert not shipped  # a ship-complete order that shipped anything is never rerouted


def _predictions(network: Network, order: Order, policy: Any, data: Any) -> dict:  # type: ignore[type-arg]
    from routing import Prediction

    return {
        pair: Prediction(
            data.draw(st.floats(0, 1)),
            p50 := data.draw(st.floats(0.5, 6)),
            p50 * data.draw(st.floats(1, 2)),
        )
        for pair in candidate_pairs(order, network, policy, NOW)
    }
