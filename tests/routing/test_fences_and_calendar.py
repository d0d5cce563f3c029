"""Fences and calendars: each hard rule removes the node with its reason code."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from routing_helpers import NOW, net, order

from routing import calendar_from_dict, candidate_pairs, plan_to_dict, policy_from_dict, route


def reasons(plan: dict, line: int = 0) -> dict[str, str | None]:  # type: ignore[type-arg]
    return {c["node_id"]: c.get("reason_code") for c in plan["ranking"][line]["candidates"]}


def test_calendar_closure_holiday_and_hours() -> None:
    cal = calendar_from_dict(
        {
            "weekly_hours": {"mon": ["09:00-17:00"], "wed": ["09:00-12:00", "13:00-18:00"]},
            "holidays": ["2024-12-25"],
            "closures": [
                {"start": "2024-05-09T00:00", "end": "2024-05-10T00:00", "reason": "stocktake"}
            ],
        }
    )
    tz = "America/New_York"
    wed_noon_ny = datetime.fromisoformat("2024-05-08T16:30:00+00:00")  # 12:30 local
    assert cal.status(wed_noon_ny, tz, require_open_now=False) is None
    assert "outside opening hours" in str(cal.status(wed_noon_ny, tz, require_open_now=True))
    assert "stocktake" in str(
        cal.status(wed_noon_ny + timedelta(days=1), tz, require_open_now=False)
    )
    assert "closed on tue" in str(
        cal.status(wed_noon_ny - timedelta(days=1), tz, require_open_now=False)
    )
    assert "holiday" in str(
        cal.status(datetime.fromisoformat("2024-12-25T15:00:00+00:00"), tz, require_open_now=False)
    )
    # 02:00 UTC Thursday is still Wednesday evening in New York: the time zone matters
    assert (
        cal.status(datetime.fromisoformat("2024-05-09T02:00:00+00:00"), tz, require_open_now=False)
        is None
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"weekly_hours": {"funday": ["09:00-10:00"]}},
        {"weekly_hours": {"mon": ["10:00-09:00"]}},
        {"closures": [{"start": "2024-01-02T00:00", "end": "2024-01-01T00:00"}]},
    ],
)
def test_calendar_rejects_bad_input(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        calendar_from_dict(bad)


def test_closed_node_is_never_chosen_even_if_cheapest() -> None:
    closed = {
        "closures": [{"start": "2024-05-08T00:00:00+00:00", "end": "2024-05-09T00:00:00+00:00"}]
    }
    network = net(
        [
            {"id": "NEAR", "lat": 40.7, "lon": -74.0, "calendar": closed},
            {"id": "FAR", "lat": 34.0, "lon": -118.0},
        ],
        [("NEAR", "X", 10), ("FAR", "X", 10)],
    )
    o = order(("X", 1), dest_lat=40.75, dest_lon=-73.99)
    for mode in ("cost", "priority", "distance", "high_stock"):
        plan = plan_to_dict(route(o, network, mode=mode, now=NOW))  # type: ignore[arg-type]
        assert [a["node_id"] for a in plan["allocations"]] == ["FAR"]
        assert reasons(plan)["NEAR"] == "NODE_CLOSED"


def test_node_with_no_stock_is_never_ranked_first() -> None:
    network = net(
        [
            {"id": "EMPTY", "lat": 40.7, "lon": -74.0, "priority": 0},
            {"id": "FULL", "lat": 34.0, "lon": -118.0, "priority": 9},
        ],
        [("EMPTY", "X", 0), ("FULL", "X", 3)],
    )
    o = order(("X", 1), dest_lat=40.75, dest_lon=-73.99)
    for mode in ("cost", "priority", "distance", "high_stock"):
        plan = plan_to_dict(route(o, network, mode=mode, now=NOW))  # type: ignore[arg-type]
        first = plan["ranking"][0]["candidates"][0]
        assert first["node_id"] == "FULL" and first["rank"] == 1
        assert reasons(plan)["EMPTY"] == "OUT_OF_STOCK"


def test_every_fence_has_its_reason_code() -> None:
    network = net(
        [
            {"id": "DIS", "enabled": False, "lat": 40, "lon": -74},
            {"id": "EXC", "lat": 40, "lon": -74},
            {"id": "TYPE", "type": "3pl", "lat": 40, "lon": -74},
            {"id": "CAP", "daily_capacity": 5, "orders_today": 5, "lat": 40, "lon": -74},
            {"id": "GRP", "ships_groups": ["frozen"], "lat": 40, "lon": -74},
            {"id": "FAR", "lat": 34, "lon": -118},
            {"id": "SAFE", "lat": 40, "lon": -74},
            {"id": "OK", "lat": 40, "lon": -74},
        ],
        [(n, "X", 5) for n in ("DIS", "EXC", "TYPE", "CAP", "GRP", "FAR", "OK")]
        + [("SAFE", "X", 2)],
    )
    policy = policy_from_dict(
        {
            "channels": {"web": ["dc", "store"]},
            "groups": {"toys": {"max_distance_km": 1000}},
            "safety_stock": [{"node": "SAFE", "qty": 2}],
        }
    )
    o = order(
        ("X", 1),
        dest_lat=40.7,
        dest_lon=-74.0,
        excluded_nodes=frozenset({"EXC"}),
        line1={"product_group": "toys"},
    )
    plan = plan_to_dict(route(o, network, mode="cost", policy=policy, now=NOW))
    assert reasons(plan) == {
        "OK": None,
        "DIS": "NODE_DISABLED",
        "EXC": "NODE_EXCLUDED",
        "TYPE": "CHANNEL_NOT_ALLOWED",
        "CAP": "AT_CAPACITY",
        "GRP": "GROUP_NOT_SHIPPED",
        "FAR": "TOO_FAR",
        "SAFE": "SAFETY_STOCK",
    }
    assert all(c["reason"] for c in plan["ranking"][0]["candidates"] if not c["eligible"])
    assert candidate_pairs(o, network, policy, NOW) == [("1", "OK")]


def test_capacity_penalised_instead_of_fenced() -> None:
    network = net(
        [
            {"id": "BUSY", "lat": 40.7, "lon": -74.0, "daily_capacity": 1, "orders_today": 1},
            {"id": "IDLE", "lat": 40.0, "lon": -75.0},
        ],
        [("BUSY", "X", 5), ("IDLE", "X", 5)],
    )
    o = order(("X", 1), dest_lat=40.75, dest_lon=-73.99)
    fence = plan_to_dict(route(o, network, mode="cost", now=NOW))
    pen = plan_to_dict(
        route(
            o,
            network,
            mode="cost",
            policy=policy_from_dict(
                {
                    "capacity": "penalise",
                    "capacity_penalty": 0.0,
                    "defaults": {"congestion_cost": 0.0},  # no price for the full node either
                }
            ),
            now=NOW,
        )
    )
    assert reasons(fence)["BUSY"] == "AT_CAPACITY"
    assert pen["allocations"][0]["node_id"] == "BUSY"  # nearest, penalty 0


def test_pickup_order_served_only_by_chosen_store() -> None:
    network = net(
        [{"id": "S1", "type": "store"}, {"id": "DC", "priority": 0}],
        [("S1", "X", 1), ("DC", "X", 9)],
    )
    plan = plan_to_dict(
        route(order(("X", 2), pickup_node_id="S1"), network, mode="priority", now=NOW)
    )
    assert plan["shippable"] is False and plan["allocations"] == []
    assert reasons(plan)["DC"] == "PICKUP_ONLY"
