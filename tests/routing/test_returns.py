"""Where a return goes: nearest accepting node, else the returns centre, with the reason."""

from __future__ import annotations

from routing import Node
from routing.returns import ReturnsPolicy, choose_return_node

NODES = [
    Node("DC1", "dc", 40.7, -74.0),
    Node("ST1", "store", 34.0, -118.2, ships_groups=frozenset({"toys"})),
    Node("ST2", "store", 41.9, -87.6, enabled=False),
    Node("RC", "3pl", 39.0, -95.0),
]


def test_nearest_enabled_accepting_node() -> None:
    got = choose_return_node(NODES, frozenset({"toys"}), 34.1, -118.3, ReturnsPolicy())
    assert got is not None and got.node_id == "ST1" and "nearest enabled store" in got.why
    # ST1 does not take books back, ST2 is disabled: the DC in New York is next
    got = choose_return_node(NODES, frozenset({"books"}), 34.1, -118.3, ReturnsPolicy())
    assert got is not None and got.node_id == "DC1"


def test_returns_centre_when_nothing_accepts() -> None:
    only_stores = ReturnsPolicy(node_types=["store"], centre="RC")
    got = choose_return_node(NODES, frozenset({"books"}), 34.1, -118.3, only_stores)
    assert got is not None and got.node_id == "RC" and got.why.startswith("returns centre")
    assert (
        choose_return_node(
            NODES, frozenset({"books"}), 34.1, -118.3, ReturnsPolicy(node_types=["store"])
        )
        is None
    )
