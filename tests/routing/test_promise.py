"""Promise dates with fixed clocks: cut-offs, closed days, holidays, closures, carrier days off,
split orders and a daylight-saving change, each in the node's or destination's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from routing import calendar_from_dict
from routing.calendar import NodeCalendar
from routing.policy import policy_from_dict
from routing.promise import (
    CarrierDays,
    ShipmentLeg,
    carriers_of,
    legs_from_plan,
    order_promise,
    promise_to_dict,
    shipment_promise,
)

NY, LA = "America/New_York", "America/Los_Angeles"
WEEKDAYS_ONLY = calendar_from_dict(
    {
        "weekly_hours": {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "cutoff": "15:00",
    }
)
NO_SUNDAY = CarrierDays(frozenset({6}))
EVERY_DAY = CarrierDays(frozenset())


def _leg(cal: NodeCalendar | None, p50: float = 2.0, p90: float = 4.0, tz: str = NY) -> ShipmentLeg:
    return ShipmentLeg("N1", tz, cal, p50, p90)


def test_before_cutoff_ships_today_and_arrives_after_the_quantiles() -> None:
    now = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)  # Monday 14:00 in New York
    s = shipment_promise(_leg(WEEKDAYS_ONLY), now, NY, NO_SUNDAY)
    assert s.ships_at == datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 15:00 EST
    assert (s.ship_by, s.deliver_p50, s.deliver_by, s.held_days) == (
        date(2026, 3, 2),
        date(2026, 3, 4),
        date(2026, 3, 6),
        0,
    )


def test_after_cutoff_ships_next_open_day() -> None:
    now = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)  # Monday 16:00, past the 15:00 cut-off
    s = shipment_promise(_leg(WEEKDAYS_ONLY), now, NY, NO_SUNDAY)
    assert s.ship_by == date(2026, 3, 3) and s.held_days == 0


def test_closed_weekend_holds_the_parcel_and_pushes_the_dates() -> None:
    now = datetime(2026, 3, 6, 21, 0, tzinfo=UTC)  # Friday 16:00: next open day is Monday
    s = shipment_promise(_leg(WEEKDAYS_ONLY, 2.0, 3.0), now, NY, EVERY_DAY)
    assert s.ship_by == date(2026, 3, 9) and s.held_days == 2  # Saturday would be usual
    # 2 days + 2 held from Friday 16:00 -> Tuesday; 3 days + 2 held -> Wednesday
    assert (s.deliver_p50, s.deliver_by) == (date(2026, 3, 10), date(2026, 3, 11))


def test_holiday_and_closure_at_the_node() -> None:
    holiday = NodeCalendar(holidays=frozenset({date(2026, 12, 25)}), cutoff=WEEKDAYS_ONLY.cutoff)
    now = datetime(2026, 12, 24, 21, 0, tzinfo=UTC)  # Thursday after cut-off; Friday is Xmas
    s = shipment_promise(_leg(holiday), now, NY, EVERY_DAY)
    assert s.ship_by == date(2026, 12, 26) and s.held_days == 1
    closed = calendar_from_dict(
        {"closures": [{"start": "2026-12-01T00:00", "end": "2026-12-03T00:00"}], "cutoff": "15:00"}
    )
    now = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # Monday after cut-off; closed Tue + Wed
    s = shipment_promise(_leg(closed), now, NY, EVERY_DAY)
    assert s.ship_by == date(2026, 12, 3) and s.held_days == 2


def test_carrier_days_off_and_holidays_move_the_arrival() -> None:
    now = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)  # Thursday 09:00; P50 3 days -> Sunday
    s = shipment_promise(_leg(None, 3.0, 3.0), now, NY, NO_SUNDAY)
    assert s.deliver_p50 == date(2026, 3, 9)  # Monday
    xmas = CarrierDays(frozenset({6}), frozenset({date(2026, 12, 25)}))
    now = datetime(2026, 12, 22, 14, 0, tzinfo=UTC)  # Tuesday; P50 2 days -> Thursday 24th
    s = shipment_promise(_leg(None, 2.0, 2.0), now, NY, xmas)
    assert s.deliver_p50 == date(2026, 12, 24)  # the holiday comes after the arrival
    s = shipment_promise(_leg(None, 3.0, 3.0), now, NY, xmas)
    assert s.deliver_p50 == date(2026, 12, 26)  # Friday 25th lost -> Saturday


def test_dst_change_moves_the_cutoff_instant() -> None:
    """US clocks spring forward on Sunday 2026-03-08: 15:00 in Los Angeles is 23:00 UTC on
    Saturday but 22:00 UTC on Sunday. An order at 22:30 UTC Sunday is past the cut-off."""
    every_day = NodeCalendar(cutoff=WEEKDAYS_ONLY.cutoff)
    saturday = datetime(2026, 3, 7, 22, 30, tzinfo=UTC)  # 14:30 PST: before the cut-off
    sunday = datetime(2026, 3, 8, 22, 30, tzinfo=UTC)  # 15:30 PDT: after it
    sat = shipment_promise(_leg(every_day, tz=LA), saturday, LA, EVERY_DAY)
    sun = shipment_promise(_leg(every_day, tz=LA), sunday, LA, EVERY_DAY)
    assert sat.ships_at == datetime(2026, 3, 7, 23, 0, tzinfo=UTC) and sat.ship_by == date(
        2026, 3, 7
    )
    assert sun.ships_at == datetime(2026, 3, 9, 22, 0, tzinfo=UTC) and sun.ship_by == date(
        2026, 3, 9
    )


def test_dates_are_in_the_destination_time_zone() -> None:
    late = NodeCalendar(cutoff=calendar_from_dict({"cutoff": "22:30"}).cutoff)
    now = datetime(2026, 6, 1, 20, 0, tzinfo=UTC)  # 13:00 in Los Angeles
    s = shipment_promise(_leg(late, 0.2, 0.25, tz=LA), now, NY, EVERY_DAY)
    # leaves 22:30 PDT on 1 June = 01:30 EDT on 2 June in New York
    assert s.ship_by == date(2026, 6, 2) and s.deliver_p50 == date(2026, 6, 2)


def test_split_order_takes_the_latest_shipment_and_a_lower_confidence() -> None:
    now = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    fast, slow = ShipmentLeg("A", NY, None, 1.0, 2.0), ShipmentLeg("B", LA, None, 4.0, 6.0)
    one = order_promise([fast], now, NY, EVERY_DAY)
    both = order_promise([fast, slow], now, NY, EVERY_DAY)
    assert one is not None and both is not None
    assert one.confidence == 0.9 and both.confidence == 0.8
    assert (both.deliver_p50, both.deliver_by) == (date(2026, 3, 6), date(2026, 3, 8))
    assert [s.node_id for s in both.shipments] == ["A", "B"]
    assert promise_to_dict(both)["deliver_by"] == "2026-03-08"
    assert order_promise([], now, NY, EVERY_DAY) is None


def test_legs_take_each_node_slowest_line() -> None:
    allocs = [
        {"node_id": "A", "days_p50": 1.0, "days_p90": 3.0},
        {"node_id": "A", "days_p50": 2.0, "days_p90": 2.5},
        {"node_id": "B", "days_p50": 1.5, "days_p90": 2.0},
    ]
    legs = legs_from_plan(allocs, {"A": (NY, None), "B": (LA, WEEKDAYS_ONLY)})
    assert [(g.node_id, g.days_p50, g.days_p90, g.node_timezone) for g in legs] == [
        ("A", 2.0, 3.0, NY),
        ("B", 1.5, 2.0, LA),
    ]
    with pytest.raises(ValueError, match="quantiles"):
        legs_from_plan([{"node_id": "A", "days_p50": None, "days_p90": None}], {"A": (NY, None)})


def test_policy_carrier_calendar_is_validated() -> None:
    policy = policy_from_dict(
        {"carrier_calendar": {"days_off": ["sat", "sun"], "holidays": ["2026-12-25"]}}
    )
    assert carriers_of(policy) == CarrierDays(frozenset({5, 6}), frozenset({date(2026, 12, 25)}))
    assert carriers_of(policy_from_dict(None)) == NO_SUNDAY
    with pytest.raises(Exception, match="carrier_calendar"):
        policy_from_dict({"carrier_calendar": {"days_off": ["funday"]}})


def test_a_calendar_that_never_ships_is_an_error() -> None:
    never = calendar_from_dict({"weekly_hours": {}})
    with pytest.raises(ValueError, match="ships nothing"):
        shipment_promise(_leg(never), datetime(2026, 3, 2, tzinfo=UTC), NY, EVERY_DAY)


def test_conformal_widening_is_the_finite_sample_quantile() -> None:
    from routing.promise import conformal_widening

    assert conformal_widening([], 0.9) == 0.0
    assert conformal_widening([-2, -1, 0], 0.9) == 0.0  # already covered: never narrows
    # n = 9: ceil(10 * 0.9) = 9th smallest
    assert conformal_widening([0, 0, 0, 0, 0, 0, 0, 1, 3], 0.9) == 3.0
    # n = 19: ceil(20 * 0.9) = 18th smallest
    assert conformal_widening([0] * 17 + [2, 5], 0.9) == 2.0
    with pytest.raises(ValueError):
        conformal_widening([1.0], 1.0)


def test_holiday_and_cutoff_are_read_in_the_node_zone_not_utc() -> None:
    """23:30 UTC on 24 December is 15:30 in Los Angeles: past that node's 15:00 cut-off, and
    its next day (the 25th there) is a holiday, so the parcel leaves at 15:00 PST on the
    26th (23:00 UTC), not at a UTC cut-off."""
    xmas = NodeCalendar(holidays=frozenset({date(2026, 12, 25)}), cutoff=WEEKDAYS_ONLY.cutoff)
    now = datetime(2026, 12, 24, 23, 30, tzinfo=UTC)
    s = shipment_promise(_leg(xmas, tz=LA), now, LA, EVERY_DAY)
    assert s.ships_at == datetime(2026, 12, 26, 23, 0, tzinfo=UTC)
    assert s.ship_by == date(2026, 12, 26) and s.held_days == 1
