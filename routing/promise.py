"""Order-level promise dates: when the order ships and when it arrives, as dates at the
destination, from the chosen nodes' calendars and cut-offs, carrier delivery days and the
delivery-time quantiles the plan was rated on.

The quantiles count days from the order to the delivery and already carry a node's usual
handling and weekends; what they cannot know is a holiday or closure at the node, or a
carrier holiday. Those push the dates: a shipment held past its normal ship day by the
calendar arrives that many days later, a carrier holiday inside the transit costs a day, and
an arrival on a day carriers do not deliver moves to the next day they do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from routing.calendar import WEEKDAYS, NodeCalendar, zone
from routing.policy import Policy

#: Nominal coverage of the P90 quantile the ``deliver_by`` date comes from.
P90_LEVEL = 0.9


@dataclass(frozen=True, slots=True)
class CarrierDays:
    """Days carriers do not deliver, in the destination's time zone."""

    days_off: frozenset[int] = frozenset({6})  # weekday numbers, 0 = Monday
    holidays: frozenset[date] = frozenset()

    def delivers(self, day: date) -> bool:
        return day.weekday() not in self.days_off and day not in self.holidays

    def roll_forward(self, day: date) -> date:
        for _ in range(366):
            if self.delivers(day):
                return day
            day += timedelta(days=1)
        raise ValueError("carriers deliver on no day of the year")


def carrier_days(days_off: Iterable[str], holidays: Iterable[date]) -> CarrierDays:
    """From the policy's day names (``"sun"``) and holiday dates."""
    off = frozenset(WEEKDAYS.index(name) for name in days_off)
    if len(off) == 7:
        raise ValueError("carriers must deliver on at least one weekday")
    return CarrierDays(off, frozenset(holidays))


@dataclass(frozen=True, slots=True)
class ShipmentLeg:
    """One shipment of the plan: where it leaves from and its delivery-day quantiles."""

    node_id: str
    node_timezone: str
    calendar: NodeCalendar | None
    days_p50: float
    days_p90: float


@dataclass(frozen=True, slots=True)
class ShipmentPromise:
    node_id: str
    ships_at: datetime
    ship_by: date
    deliver_p50: date
    deliver_by: date
    held_days: int


@dataclass(frozen=True, slots=True)
class Promise:
    """What the customer is told; dates are in ``timezone`` (the destination's)."""

    ship_by: date
    deliver_p50: date
    deliver_by: date
    confidence: float
    timezone: str
    shipments: tuple[ShipmentPromise, ...]


_ALWAYS_OPEN = NodeCalendar()


def _arrival(
    now: datetime,
    days: float,
    held: int,
    not_before: date,
    ships_on: date,
    dest_tz: str,
    carriers: CarrierDays,
) -> date:
    day = max((now + timedelta(days=days + held)).astimezone(zone(dest_tz)).date(), not_before)
    lost = sum(1 for h in carriers.holidays if ships_on < h < day)  # the day itself rolls
    day = carriers.roll_forward(day)
    for _ in range(lost):
        day = carriers.roll_forward(day + timedelta(days=1))
    return day


def shipment_promise(
    leg: ShipmentLeg, now: datetime, dest_tz: str, carriers: CarrierDays
) -> ShipmentPromise:
    """Ship and arrival dates of one shipment placed at ``now``."""
    cal = leg.calendar or _ALWAYS_OPEN
    ships_at = cal.next_cutoff(now, leg.node_timezone)
    node_tz = zone(leg.node_timezone)
    # The day it would leave if the node worked every day with the same cut-off: today, or
    # tomorrow after the cut-off. Only days beyond that are news to the quantiles.
    same_cutoff = NodeCalendar(cutoff=ships_at.astimezone(node_tz).timetz().replace(tzinfo=None))
    usual = same_cutoff.next_cutoff(now, leg.node_timezone)
    held = (ships_at.astimezone(node_tz).date() - usual.astimezone(node_tz).date()).days
    ship_by = ships_at.astimezone(zone(dest_tz)).date()
    ships_on = ships_at.astimezone(node_tz).date()
    p50 = _arrival(now, leg.days_p50, held, ship_by, ships_on, dest_tz, carriers)
    p90 = _arrival(now, max(leg.days_p90, leg.days_p50), held, p50, ships_on, dest_tz, carriers)
    return ShipmentPromise(leg.node_id, ships_at, ship_by, p50, p90, held)


def order_promise(
    legs: Sequence[ShipmentLeg], now: datetime, dest_tz: str, carriers: CarrierDays
) -> Promise | None:
    """The order's promise: its latest shipment sets every date. ``confidence`` is the chance
    all shipments arrive by ``deliver_by`` (a union bound over the P90 of each)."""
    if not legs:
        return None
    parts = tuple(shipment_promise(leg, now, dest_tz, carriers) for leg in legs)
    return Promise(
        ship_by=max(p.ship_by for p in parts),
        deliver_p50=max(p.deliver_p50 for p in parts),
        deliver_by=max(p.deliver_by for p in parts),
        confidence=round(max(0.0, 1.0 - len(parts) * (1.0 - P90_LEVEL)), 4),
        timezone=dest_tz,
        shipments=parts,
    )


def legs_from_plan(
    allocations: Sequence[Mapping[str, object]],
    nodes: Mapping[str, tuple[str, NodeCalendar | None]],
) -> list[ShipmentLeg]:
    """One leg per node of the plan's allocations (``plan_to_dict`` form); a shipment's
    quantiles are those of its slowest line."""
    by_node: dict[str, tuple[float, float]] = {}
    for a in allocations:
        node = str(a["node_id"])
        p50, p90 = a.get("days_p50"), a.get("days_p90")
        if not isinstance(p50, (int, float)) or not isinstance(p90, (int, float)):
            raise ValueError(f"allocation at {node} has no delivery quantiles")
        old = by_node.get(node, (0.0, 0.0))
        by_node[node] = (max(old[0], float(p50)), max(old[1], float(p90)))
    return [
        ShipmentLeg(node, nodes[node][0], nodes[node][1], p50, p90)
        for node, (p50, p90) in sorted(by_node.items())
    ]


def promise_to_dict(p: Promise) -> dict[str, object]:
    return {
        "ship_by": p.ship_by.isoformat(),
        "deliver_p50": p.deliver_p50.isoformat(),
        "deliver_by": p.deliver_by.isoformat(),
        "confidence": p.confidence,
        "timezone": p.timezone,
        "shipments": [
            {
                "node_id": s.node_id,
                "ships_at": s.ships_at.isoformat(),
                "ship_by": s.ship_by.isoformat(),
                "deliver_p50": s.deliver_p50.isoformat(),
                "deliver_by": s.deliver_by.isoformat(),
                "held_days": s.held_days,
            }
            for s in p.shipments
        ],
    }


def carriers_of(policy: Policy) -> CarrierDays:
    """The policy's carrier calendar in the form the date arithmetic reads."""
    cal = policy.carrier_calendar
    return carrier_days(cal.days_off, cal.holidays)


def conformal_widening(residuals: Sequence[float], target: float = P90_LEVEL) -> float:
    """Days to add to a lane's P90 so that ``target`` of its recent shipments would have
    arrived by ``deliver_by``: the split-conformal quantile (the ⌈(n+1)·target⌉-th smallest,
    capped at n) of the raw residuals — days late against the date before any widening —
    and never below 0."""
    if not 0.0 < target < 1.0:
        raise ValueError("target coverage must be within (0, 1)")
    if not residuals:
        return 0.0
    ordered = sorted(residuals)
    k = min(len(ordered), math.ceil((len(ordered) + 1) * target))
    return max(0.0, float(ordered[k - 1]))
