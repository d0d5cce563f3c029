"""Screening glue: gather what the policy's screening rules look at (order value from the
catalogue, recent orders from the ledger) and turn the reasons into a ``Hold``."""

from __future__ import annotations

from datetime import datetime, timedelta

from routing.screening import ScreeningInput, screen
from serving.ledger.records import Hold
from serving.runtime import Runtime
from serving.schemas.order import Destination, OrderIn


def destination_key(dest: Destination) -> str:
    """One key per delivery address for counting orders to it."""
    if dest.postal_code:
        return f"{dest.country.upper()}:{dest.postal_code.replace(' ', '').upper()}"
    return f"{dest.country.upper()}:{dest.lat:.4f},{dest.lon:.4f}"


def hold_for(body: OrderIn, runtime: Runtime, now: datetime) -> Hold | None:
    """The hold the policy puts on this order, or ``None`` to release it at once."""
    rules = runtime.policy.screening_for(body.channel)
    if not rules.active:
        return None
    recent_dest = recent_cust = 0
    if rules.max_orders_per_destination is not None or rules.max_orders_per_customer is not None:
        recent_dest, recent_cust = runtime.ledger.recent_orders(
            customer_id=body.customer_id,
            destination_key=destination_key(body.destination),
            since=now - timedelta(hours=rules.window_hours),
        )
    value = 0.0
    for line in body.lines:
        rec = runtime.skus.get(line.sku.upper())
        value += line.qty * (rec.price if rec else 0.0)
    reasons = screen(
        rules,
        ScreeningInput(
            order_value=value,
            skus=tuple(line.sku for line in body.lines),
            shipping_country=body.destination.country,
            billing_country=body.billing_country,
            recent_to_destination=recent_dest,
            recent_by_customer=recent_cust,
        ),
    )
    if not reasons:
        return None
    return Hold(tuple(reasons), now + timedelta(hours=rules.hold_hours))
