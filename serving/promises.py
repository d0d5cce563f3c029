"""The order's promise, attached to every routed answer: glue between a plan, the network's
node calendars and the policy's carrier calendar; the date arithmetic is ``routing.promise``.

A lane (node → destination region) whose confirmed deliveries missed ``deliver_by`` too often
carries a P90 widening (``serving.promise_monitor``); the promise adds it to that leg's P90
and records it, with the lane and the delivery model, so each outcome can be checked later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from routing import Network, Policy
from routing.calendar import NodeCalendar
from routing.promise import (
    ShipmentLeg,
    carriers_of,
    legs_from_plan,
    order_promise,
    promise_to_dict,
)

#: Zone of the promise when the destination names none and its postal code is not known.
FALLBACK_TIMEZONE = "UTC"
#: Region of a destination whose region is not known (its lane is still measured).
UNKNOWN_REGION = "??"


@dataclass(frozen=True, slots=True)
class Widening:
    """Days added to the P90 of each lane, for the delivery model ``model`` they were
    measured against."""

    model: str = "none"
    days: Mapping[tuple[str, str], float] = field(default_factory=dict)


NO_WIDENING = Widening()


def promise_for(
    answer: dict[str, Any],
    network: Network,
    policy: Policy,
    *,
    now: datetime,
    dest_timezone: str | None,
    dest_region: str | None = None,
    widening: Widening = NO_WIDENING,
) -> dict[str, Any] | None:
    """``{ship_by, deliver_p50, deliver_by, confidence, timezone, dest_region, delivery_model,
    shipments}`` for the plan's allocations (``None`` when nothing is allocated)."""
    allocations = answer.get("allocations") or []
    if not allocations:
        return None
    by_id = network.nodes
    nodes: dict[str, tuple[str, NodeCalendar | None]] = {}
    for a in allocations:
        node = by_id[a["node_id"]]
        nodes[a["node_id"]] = (node.timezone, node.calendar)
    region = dest_region or UNKNOWN_REGION
    legs = legs_from_plan(allocations, nodes)
    added = {leg.node_id: float(widening.days.get((leg.node_id, region), 0.0)) for leg in legs}
    # dataclasses.replace costs ~5 us a leg on every decision: the constructor directly
    legs = [
        ShipmentLeg(
            leg.node_id,
            leg.node_timezone,
            leg.calendar,
            leg.days_p50,
            leg.days_p90 + added[leg.node_id],
        )
        for leg in legs
    ]
    promise = order_promise(legs, now, dest_timezone or FALLBACK_TIMEZONE, carriers_of(policy))
    if promise is None:
        return None
    out: dict[str, Any] = dict(promise_to_dict(promise))
    out["dest_region"] = region
    out["delivery_model"] = widening.model
    for s in cast(list[dict[str, Any]], out["shipments"]):
        s["p90_widening_days"] = added[s["node_id"]]
    return out
