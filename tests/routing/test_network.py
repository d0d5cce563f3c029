"""``Network`` built from stock rows and from shared per-SKU columns answers alike."""

from __future__ import annotations

import numpy as np
import pytest

from routing import Network, Node, NodeSet, SkuStock, StockRow, route
from tests.routing.routing_helpers import NOW, order

NODES = [
    Node("B", "store", 40.0, -74.0, handling_cost=1.0),
    Node("A", "dc", 41.0, -75.0, handling_cost=2.0),
    Node("C", "3pl", None, None),
]
ROWS = [
    StockRow("B", "Sku-1", 3.0),
    StockRow("A", "sku-1", 0.0, False),
    StockRow("C", "SKU-1", 5.0),
    StockRow("A", "x", 2.0),
]


def columns() -> Network:
    return Network.from_stock_columns(
        NodeSet(NODES),
        {
            "sku-1": SkuStock(["B", "A", "C"], [3.0, 0.0, 5.0], [True, False, True]),
            "x": SkuStock(["A"], np.array([2.0])),
        },
    )


def test_columns_answer_like_rows() -> None:
    rows, cols = Network(NODES, ROWS), columns()
    assert sorted(rows.nodes) == sorted(cols.nodes) == ["A", "B", "C"]
    for sku in ("sku-1", "SKU-1", "x", "missing"):
        got = [(r.node_id, r.available, r.in_stock) for r in cols.stock_for(sku)]
        want = [(r.node_id, r.available, r.in_stock) for r in rows.stock_for(sku)]
        assert got == want
        for n in ("A", "B", "C", "Z"):
            assert cols.available(n, sku) == rows.available(n, sku)
            assert (cols.row(n, sku) is None) == (rows.row(n, sku) is None)
    assert [r.node_id for r in rows.stock_for("sku-1")] == ["A", "B", "C"]
    assert rows.available("A", "sku-1") == 0.0 and rows.available("C", "Sku-1") == 5.0


def test_columns_route_like_rows() -> None:
    o = order(("sku-1", 2), ("x", 1), dest_lat=40.5, dest_lon=-74.5)
    a = route(o, Network(NODES, ROWS), mode="cost", now=NOW)
    b = route(o, columns(), mode="cost", now=NOW)
    assert a == b and a.allocations


def test_columns_are_shared_not_copied() -> None:
    st = SkuStock(["B", "A"], [1.0, 2.0])
    net = Network.from_stock_columns(NODES, {"s": st})
    assert net.stock("S") is st and st.node_ids == ("A", "B")
    with pytest.raises(ValueError):
        st.available[0] = 9.0  # read-only: every network built from it sees the same stock


def test_bad_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown node"):
        Network.from_stock_columns(NODES, {"s": SkuStock(["Z"], [1.0])})
    with pytest.raises(ValueError, match="appears twice"):
        SkuStock(["A", "A"], [1.0, 2.0])
    with pytest.raises(ValueError, match="appears twice"):
        Network.from_stock_columns(NODES, {"s": SkuStock(["A"], [1.0]), "S": SkuStock([], [])})
    with pytest.raises(ValueError, match="differ in length"):
        SkuStock(["A"], [1.0, 2.0])
    with pytest.raises(ValueError, match="appears twice"):
        Network([*NODES, NODES[0]])


def test_stock_checked_once_per_node_set_and_again_for_another() -> None:
    st = SkuStock(["A", "B"], [1.0, 2.0])
    nodes = NodeSet(NODES)
    assert Network.from_stock_columns(nodes, {"s": st}).available("B", "s") == 2.0
    assert Network.from_stock_columns(nodes, {"s": st}).available("A", "s") == 1.0
    with pytest.raises(ValueError, match="unknown node 'B'"):
        Network.from_stock_columns(NodeSet([NODES[1]]), {"s": st})
