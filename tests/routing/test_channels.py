"""Channels: a configured vocabulary and a per-channel policy (node types, promise buffer,
shipment cap, no splitting)."""

from __future__ import annotations

import pytest
from routing_helpers import NOW, net, order

from routing import InvalidPolicy, Prediction, candidate_pairs, policy_from_dict, route

NODES = [
    {"node_id": "DC1", "node_type": "dc", "lat": 40.7, "lon": -74.0},
    {"node_id": "ST1", "node_type": "store", "lat": 40.8, "lon": -73.9},
]


def test_default_vocabulary_and_shorthand() -> None:
    policy = policy_from_dict({"channels": {"pos": ["store"]}})
    assert policy.channel_names == ["web", "app", "marketplace", "pos", "call_centre"]
    assert policy.knows_channel("marketplace") and not policy.knows_channel("fax")
    assert policy.allowed_types("pos") == frozenset({"store"})
    assert policy.allowed_types("web") is None


def test_a_channel_outside_the_vocabulary_is_named() -> None:
    with pytest.raises(InvalidPolicy, match=r"channels: \['fax'\] are not in channel_names"):
        policy_from_dict({"channels": {"fax": {"node_types": ["dc"]}}})
    with pytest.raises(InvalidPolicy, match=r"channels\.web\.promise_buffer_days"):
        policy_from_dict({"channels": {"web": {"promise_buffer_days": -1}}})


def test_channel_node_types_fence_nodes() -> None:
    network = net(NODES, [("DC1", "A", 5), ("ST1", "A", 5)])
    policy = policy_from_dict({"channels": {"marketplace": {"node_types": ["dc"]}}})
    o = order(("A", 1), channel="marketplace", dest_lat=40.8, dest_lon=-73.9)
    assert {n for _, n in candidate_pairs(o, network, policy, NOW)} == {"DC1"}


def test_channel_shipment_cap_and_never_split() -> None:
    network = net(NODES, [("DC1", "A", 2), ("ST1", "A", 2), ("DC1", "B", 1), ("ST1", "B", 0)])
    free = order(("A", 3), channel="web", dest_lat=40.7, dest_lon=-74.0)
    assert route(free, network, mode="cost", now=NOW).shipments == 2
    capped = policy_from_dict({"channels": {"web": {"max_shipments": 1}}})
    plan = route(free, network, mode="cost", policy=capped, now=NOW)
    assert not plan.shippable and plan.allocations == ()
    no_split = policy_from_dict({"channels": {"web": {"never_split": True}}})
    plan = route(free, network, mode="cost", policy=no_split, now=NOW)
    assert not plan.shippable


def test_promise_buffer_makes_late_nodes_dearer() -> None:
    network = net(NODES, [("DC1", "A", 5), ("ST1", "A", 5)])
    o = order(("A", 1), channel="marketplace", dest_lat=40.7, dest_lon=-74.0, promise_days=3)
    preds = {
        ("1", "DC1"): Prediction(0.0, 2.0, 2.5),
        ("1", "ST1"): Prediction(0.0, 1.0, 1.2),
    }
    plain = route(o, network, mode="predictive", predictions=preds, now=NOW)
    buffered = route(
        o,
        network,
        mode="predictive",
        predictions=preds,
        policy=policy_from_dict({"channels": {"marketplace": {"promise_buffer_days": 2}}}),
        now=NOW,
    )
    # DC1's p90 of 2.5 days fits a 3-day promise but not the 1 day left inside a 2-day buffer
    assert buffered.total_cost > plain.total_cost
