"""The order's promise, attached to every routed answer: glue between a plan, the network's
node calendars and the policy's carrier calendar; the date arithmetic is ``routing.promise``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from routing import Network, Policy
from routing.promise import carriers_of, legs_from_plan, order_promise, promise_to_dict

#: Zone of the promise when the destination names none and its postal code is not known.
FALLBACK_TIMEZONE = "UTC"


def promise_for(
    answer: dict[str, Any],
    network: Network,
    policy: Policy,
    *,
    now: datetime,
    dest_timezone: str | None,
) -> dict[str, Any] | None:
    """``{ship_by, deliver_p50, deliver_by, confidence, timezone, shipments}`` for the plan's
    allocations (``None`` when nothing is allocated)."""
    allocations = answer.get("allocations") or []
    if not allocations:
        return None
    nodes = {
        a["node_id"]: (network.nodes[a["node_id"]].timezone, network.nodes[a["node_id"]].calendar)
        for a in allocations
    }
    promise = order_promise(
        legs_from_plan(allocations, nodes),
        now,
        dest_timezone or FALLBACK_TIMEZONE,
        carriers_of(policy),
    )
    return None if promise is None else promise_to_dict(promise)
