"""Classic modes reproduce Saleor's allocation strategies on Saleor's own fixtures.

saleor/saleor, saleor/warehouse/management.py (``sort_stocks``, ``_create_allocations``) and
saleor/warehouse/tests/test_stock_management.py. Fixture ``variant_with_many_stocks``
(saleor/tests/fixtures): the variant has 4 units in warehouses[0] and 3 in warehouses[1];
the channel's warehouse sort order is creation order unless a test changes it.
PRIORITIZE_SORTING_ORDER maps to ``priority`` mode (sort order = node priority);
PRIORITIZE_HIGH_STOCK maps to ``high_stock``. Saleor raises InsufficientStock and creates no
allocation; routecast answers ``shippable: false`` with no allocations.
"""

from __future__ import annotations

from datetime import datetime

from routing_helpers import net, order

from routing import plan_to_dict, route

WAREHOUSES = [{"id": "warehouse-1", "priority": 0}, {"id": "warehouse-2", "priority": 1}]


def many_stocks(w1: float = 4, w2: float = 3, w2_first: bool = False):  # type: ignore[no-untyped-def]
    nodes = [dict(n) for n in WAREHOUSES]
    if w2_first:
        nodes[0]["priority"], nodes[1]["priority"] = 1, 0
    return net(nodes, [("warehouse-1", "SKU_A", w1), ("warehouse-2", "SKU_A", w2)])


def allocated(plan: dict) -> dict[str, float]:  # type: ignore[type-arg]
    return {a["node_id"]: a["qty"] for a in plan["allocations"]}


# test_stock_management.py::test_allocate_stock_many_stocks_the_highest_stock_strategy
def test_highest_stock_many_stocks(now: datetime) -> None:
    plan = plan_to_dict(route(order(("SKU_A", 5)), many_stocks(), mode="high_stock", now=now))
    assert allocated(plan) == {"warehouse-1": 4, "warehouse-2": 1}


# ...::test_allocate_stock_many_stocks_prioritize_sorting_order_strategy
def test_sorting_order_many_stocks(now: datetime) -> None:
    plan = plan_to_dict(
        route(order(("SKU_A", 5)), many_stocks(w2_first=True), mode="priority", now=now)
    )
    assert allocated(plan) == {"warehouse-2": 3, "warehouse-1": 2}


# ...::test_allocate_stock_with_reservations_prioritize_sorting_order_strategy
# (1 unit of warehouse-2 reserved by another checkout: 2 available to promise there)
def test_sorting_order_with_reservation(now: datetime) -> None:
    network = many_stocks(w1=4, w2=2, w2_first=True)
    plan = plan_to_dict(route(order(("SKU_A", 3)), network, mode="priority", now=now))
    assert allocated(plan) == {"warehouse-2": 2, "warehouse-1": 1}


# ...::test_allocate_stocks_multiple_lines_the_highest_stock_strategy
def test_highest_stock_multiple_lines(now: datetime) -> None:
    network = net(WAREHOUSES, [("warehouse-1", "SKU_A", 100), ("warehouse-1", "SKU_B", 10)])
    plan = plan_to_dict(
        route(order(("SKU_A", 50), ("SKU_B", 5)), network, mode="high_stock", now=now)
    )
    assert plan["shippable"]
    assert [(a["line_id"], a["node_id"], a["qty"]) for a in plan["allocations"]] == [
        ("1", "warehouse-1", 50),
        ("2", "warehouse-1", 5),
    ]


# ...::test_allocate_stock_insufficient_stocks (qty 10 > 4 + 3)
def test_insufficient_stock_allocates_nothing(now: datetime) -> None:
    for mode in ("high_stock", "priority"):
        plan = plan_to_dict(route(order(("SKU_A", 10)), many_stocks(), mode=mode, now=now))  # type: ignore[arg-type]
        assert plan["shippable"] is False
        assert plan["allocations"] == []
        assert plan["unallocated"] == [{"line_id": "1", "sku": "SKU_A", "qty": 3.0}]


# ...::test_allocate_stocks_the_highest_stock_strategy_with_collection_point
def test_collection_point_takes_precedence(now: datetime) -> None:
    nodes = [*WAREHOUSES, {"id": "warehouse-cc", "priority": 2, "type": "store"}]
    network = net(
        nodes,
        [("warehouse-1", "SKU_A", 4), ("warehouse-2", "SKU_A", 3), ("warehouse-cc", "SKU_A", 5)],
    )
    o = order(("SKU_A", 5), pickup_node_id="warehouse-cc")
    for mode in ("high_stock", "priority"):
        plan = plan_to_dict(route(o, network, mode=mode, now=now))  # type: ignore[arg-type]
        assert allocated(plan) == {"warehouse-cc": 5}
