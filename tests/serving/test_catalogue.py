"""The catalogue's networks: what the ledger holds, with the same node set and per-SKU stock
objects handed to every order until a node, a capacity count or that SKU's stock changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from routing import Network
from serving.catalogue import Catalogue
from serving.ledger import InitialStock, Ledger, NodeRecord, create_schema, make_engine


@pytest.fixture
def catalogue(tmp_path: Path) -> Catalogue:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    create_schema(engine)
    ledger = Ledger(engine)
    ledger.upsert_nodes(
        [
            NodeRecord("dc1", "dc", 40.7, -74.0, daily_capacity=100),
            NodeRecord("st1", "store", 41.9, -87.6),
            NodeRecord("st2", "store", 34.1, -118.2),
        ]
    )
    ledger.load_stock(
        [InitialStock("dc1", "A", 10), InitialStock("st1", "A", 0), InitialStock("st2", "B", 7)],
        event_time=datetime.now(UTC),
    )
    cat = Catalogue(tmp_path, ledger)  # no canonical tables: catalogue attributes default
    cat.reload_nodes()
    return cat


def _rows(net: Network, sku: str) -> list[tuple[str, float, bool]]:
    return [(r.node_id, r.available, r.in_stock) for r in net.stock_for(sku)]


def test_network_holds_the_ledgers_availability(catalogue: Catalogue) -> None:
    net = catalogue.network_for(["A", "B", "ZZ"])
    assert _rows(net, "A") == [("dc1", 10.0, True), ("st1", 0.0, False)]
    assert _rows(net, "B") == [("st2", 7.0, True)]
    assert net.stock("ZZ") is None and _rows(net, "ZZ") == []
    assert sorted(net.nodes) == ["dc1", "st1", "st2"]


def test_unchanged_nodes_and_stock_are_the_same_objects(catalogue: Catalogue) -> None:
    first = catalogue.network_for(["A", "B"])
    again = catalogue.network_for(["B", "A"])
    assert again.nodes is first.nodes
    assert again.stock("A") is first.stock("A") and again.stock("B") is first.stock("B")
    nodes = catalogue.nodes
    catalogue.reload_nodes()
    assert catalogue.nodes is nodes
    assert catalogue.network_for(["A"]).nodes is first.nodes


def test_an_order_changes_its_stock_and_its_nodes_count(catalogue: Catalogue) -> None:
    first = catalogue.network_for(["A", "B"])
    catalogue.ledger.reserve_order("o1", [("1", "dc1", "A", 4)], request_hash="h", plan={})
    catalogue.forget_capacity_counts()
    net = catalogue.network_for(["A", "B"])
    assert _rows(net, "A") == [("dc1", 6.0, True), ("st1", 0.0, False)]
    assert net.stock("B") is first.stock("B")
    assert net.nodes is not first.nodes
    assert net.nodes["dc1"] == replace(first.nodes["dc1"], orders_today=1)
    assert net.nodes["st1"] is first.nodes["st1"]  # only the counted node is copied


def test_a_node_edit_gives_a_new_node_set(catalogue: Catalogue) -> None:
    first = catalogue.network_for(["A"])
    catalogue.ledger.upsert_nodes([NodeRecord("st1", "store", 41.9, -87.6, enabled=False)])
    catalogue.reload_nodes()
    net = catalogue.network_for(["A"])
    assert net.nodes is not first.nodes
    assert not net.nodes["st1"].enabled and first.nodes["st1"].enabled
