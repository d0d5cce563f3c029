"""Classic modes reproduce Magento MSI on MSI's own test fixtures.

Fixtures (magento/inventory):
* InventoryApi/Test/_files/sources.php — eu-1, eu-2, eu-3 enabled; eu-disabled disabled; us-1.
* InventoryApi/Test/_files/source_items.php — SKU-1: eu-1 5.5, eu-2 3, eu-3 10 (out of stock),
  eu-disabled 10; SKU-2: us-1 5; SKU-3: eu-2 6 (out of stock); SKU-4: eu-2 6.
* InventoryApi/Test/_files/stock_source_links.php — stock 10 priorities eu-1=1, eu-2=2,
  eu-3=3, eu-disabled=4; stock 20: us-1=1.
* InventoryInStorePickup/Test/_files/source_addresses.php — source coordinates.
* InventoryInStorePickup/Test/_files/inventory_geoname.php — postcode coordinates.
MSI lists zero deductions too; routecast lists only positive quantities, and when the order is
not shippable (partial not allowed) the MSI deductions are routecast's ``best_effort``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from routing_helpers import net, order

from routing import Mode, Network, plan_to_dict, route

COORDS = {
    "eu-1": (48.9833, 2.6167),
    "eu-2": (43.5283, 5.4497),
    "eu-3": (47.8496, 12.067),
    "eu-disabled": (50.9833, 11.0333),
    "us-1": (38.7634, -95.84),
}
ITEMS: list[tuple[str, str, float, bool]] = [
    ("eu-1", "SKU-1", 5.5, True),
    ("eu-2", "SKU-1", 3, True),
    ("eu-3", "SKU-1", 10, False),
    ("eu-disabled", "SKU-1", 10, True),
    ("us-1", "SKU-2", 5, True),
    ("eu-2", "SKU-3", 6, False),
    ("eu-2", "SKU-4", 6, True),
    ("eu-1", "SKU-6", 0, True),
]


def stock10(priorities: dict[str, int] | None = None, coords: bool = False) -> Network:
    """MSI stock 10 (the EU sources) with the given source priorities."""
    pr = priorities or {"eu-1": 1, "eu-2": 2, "eu-3": 3, "eu-disabled": 4}
    nodes: list[dict[str, Any]] = []
    for code, p in pr.items():
        lat, lon = COORDS[code] if coords else (None, None)
        nodes.append(
            {"id": code, "priority": p, "enabled": code != "eu-disabled", "lat": lat, "lon": lon}
        )
    ids = set(pr)
    return net(nodes, [s for s in ITEMS if s[0] in ids])


def deductions(plan: dict[str, Any]) -> dict[str, float]:
    rows = plan["allocations"] or plan["best_effort"]
    return {f"{a['node_id']}/{a['sku']}": a["qty"] for a in rows}


def run(
    network: Network, lines: list[tuple[str, float]], mode: Mode, now: datetime, **kw: Any
) -> dict[str, Any]:
    return plan_to_dict(route(order(*lines, **kw), network, mode=mode, now=now))


# InventorySourceSelectionApi/Test/Integration/GetDefaultSortedSourcesResultTest.php
# testShouldReturnDefaultResults, shouldReturnDefaultResultsDataProvider rows 1-4
@pytest.mark.parametrize(
    ("lines", "sorted_codes", "expected", "shippable"),
    [
        ([("SKU-1", 7)], ["eu-1", "eu-2", "eu-3"], {"eu-1/SKU-1": 5.5, "eu-2/SKU-1": 1.5}, True),
        ([("SKU-1", 15)], ["eu-1", "eu-2", "eu-3"], {"eu-1/SKU-1": 5.5, "eu-2/SKU-1": 3}, False),
        ([("SKU-1", 5), ("SKU-2", 3)], ["eu-1", "eu-2", "eu-3"], {"eu-1/SKU-1": 5}, False),
        (
            [("SKU-1", 5), ("SKU-2", 3)],
            ["eu-3", "eu-2", "eu-1"],
            {"eu-2/SKU-1": 3, "eu-1/SKU-1": 2},
            False,
        ),
    ],
)
def test_msi_default_sorted_sources_result(
    lines: list[tuple[str, float]],
    sorted_codes: list[str],
    expected: dict[str, float],
    shippable: bool,
    now: datetime,
) -> None:
    prios = {code: i + 1 for i, code in enumerate(sorted_codes)}
    plan = run(stock10(prios), lines, "priority", now)
    assert plan["shippable"] is shippable
    assert deductions(plan) == expected
    if not shippable:
        assert plan["allocations"] == []  # nothing actionable without allow_partial
        assert plan["unallocated"]


# GetDefaultSortedSourcesResultTest::testShouldReturnDefaultResults, data row 5 (stock 20)
def test_msi_us_stock(now: datetime) -> None:
    network = net([{"id": "us-1", "priority": 1}], [s for s in ITEMS if s[0] == "us-1"])
    plan = run(network, [("SKU-2", 3)], "priority", now)
    assert plan["shippable"] and deductions(plan) == {"us-1/SKU-2": 3}


# GetDefaultSortedSourcesResultTest::testShouldNotThrowExceptionIfSkuCaseDoesNotMatch
def test_msi_sku_case_insensitive(now: datetime) -> None:
    plan = run(stock10(), [("sku-1", 15)], "priority", now, allow_partial=True)
    assert plan["shippable"] is False
    assert deductions(plan) == {"eu-1/sku-1": 5.5, "eu-2/sku-1": 3}


# InventorySourceSelectionApi/Test/Api/SourceSelectionServiceTest.php::testSourceSelectionService
# (default algorithm = priority)
def test_msi_source_selection_service(now: datetime) -> None:
    plan = run(stock10(), [("SKU-1", 8), ("SKU-4", 4)], "priority", now)
    assert plan["shippable"] is True
    assert deductions(plan) == {"eu-1/SKU-1": 5.5, "eu-2/SKU-1": 2.5, "eu-2/SKU-4": 4}


# Distance: InventoryDistanceBasedSourceSelection/Model/Algorithms/DistanceBasedAlgorithm.php
# with the sources of source_addresses.php and destinations from inventory_geoname.php; the
# source order per destination is the one asserted in
# InventoryInStorePickup/Test/Integration/DistanceProvider/Offline/GetNearbySourcesByPostcodeTest.php
# (FR 84490 -> eu-2, eu-1, eu-3; FR 56290 -> eu-1, eu-2).
@pytest.mark.parametrize(
    ("dest", "qty", "expected"),
    [
        ((43.9333, 5.3833), 7, {"eu-2/SKU-1": 3, "eu-1/SKU-1": 4}),  # FR 84490
        ((47.707, -3.3548), 7, {"eu-1/SKU-1": 5.5, "eu-2/SKU-1": 1.5}),  # FR 56290
        ((48.1223, 11.6205), 2, {"eu-1/SKU-1": 2}),  # DE 81671: eu-3 nearest but out of stock
    ],
)
def test_msi_distance_algorithm(
    dest: tuple[float, float], qty: float, expected: dict[str, float], now: datetime
) -> None:
    plan = run(
        stock10(coords=True), [("SKU-1", qty)], "distance", now, dest_lat=dest[0], dest_lon=dest[1]
    )
    assert plan["shippable"] is True
    assert deductions(plan) == expected
    ranked = [c["node_id"] for c in plan["ranking"][0]["candidates"] if c["eligible"]]
    assert "eu-disabled" not in ranked  # disabled sources are filtered before sorting


def test_msi_distance_unknown_after_known_in_priority_order(now: datetime) -> None:
    """DistanceBasedAlgorithm: sources whose distance fails are merged after, in priority order."""
    nodes = [
        {"id": "eu-1", "priority": 1, "lat": None, "lon": None},
        {"id": "eu-2", "priority": 2, "lat": COORDS["eu-2"][0], "lon": COORDS["eu-2"][1]},
        {"id": "eu-4", "priority": 0, "lat": None, "lon": None},
    ]
    network = net(nodes, [("eu-1", "SKU-1", 5.5), ("eu-2", "SKU-1", 3), ("eu-4", "SKU-1", 1)])
    plan = run(network, [("SKU-1", 6)], "distance", now, dest_lat=47.707, dest_lon=-3.3548)
    ranked = [c["node_id"] for c in plan["ranking"][0]["candidates"] if c["eligible"]]
    assert ranked == ["eu-2", "eu-4", "eu-1"]
    assert deductions(plan) == {"eu-2/SKU-1": 3, "eu-4/SKU-1": 1, "eu-1/SKU-1": 2}
