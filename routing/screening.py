"""Screening: which rules put an order on hold before it is released to nodes.

Pure: the caller supplies the counts of recent orders (from the ledger) and any external
score; this module only applies the policy's thresholds and names each reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class ScreeningRules(BaseModel):
    """Rules that hold an order; every rule left unset is off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_order_value: float | None = Field(default=None, gt=0, description="hold above this value")
    max_orders_per_destination: int | None = Field(
        default=None, ge=1, description="hold when more orders went to this address in the window"
    )
    max_orders_per_customer: int | None = Field(default=None, ge=1)
    window_hours: float = Field(default=24.0, gt=0)
    hold_on_country_mismatch: bool = Field(
        default=False, description="billing country differs from the shipping country"
    )
    high_risk_skus: list[str] = Field(default_factory=list)
    hold_hours: float = Field(default=48.0, gt=0, description="a hold not released expires then")

    @property
    def active(self) -> bool:
        return any(
            (
                self.max_order_value is not None,
                self.max_orders_per_destination is not None,
                self.max_orders_per_customer is not None,
                self.hold_on_country_mismatch,
                bool(self.high_risk_skus),
            )
        )


@dataclass(frozen=True, slots=True)
class ScreeningInput:
    """What screening looks at for one order (counts exclude the order itself)."""

    order_value: float
    skus: tuple[str, ...]
    shipping_country: str
    billing_country: str | None = None
    recent_to_destination: int = 0
    recent_by_customer: int = 0


def screen(rules: ScreeningRules, seen: ScreeningInput) -> list[str]:
    """The reasons to hold the order; empty means release it at once."""
    reasons: list[str] = []
    if rules.max_order_value is not None and seen.order_value > rules.max_order_value:
        reasons.append(
            f"order value {seen.order_value:.2f} is over the {rules.max_order_value:.2f} limit"
        )
    window = f"{rules.window_hours:g} h"
    if (
        rules.max_orders_per_destination is not None
        and seen.recent_to_destination >= rules.max_orders_per_destination
    ):
        reasons.append(
            f"{seen.recent_to_destination} other orders to this destination in {window} "
            f"(limit {rules.max_orders_per_destination})"
        )
    if (
        rules.max_orders_per_customer is not None
        and seen.recent_by_customer >= rules.max_orders_per_customer
    ):
        reasons.append(
            f"{seen.recent_by_customer} other orders by this customer in {window} "
            f"(limit {rules.max_orders_per_customer})"
        )
    if (
        rules.hold_on_country_mismatch
        and seen.billing_country is not None
        and seen.billing_country.upper() != seen.shipping_country.upper()
    ):
        reasons.append(
            f"billing country {seen.billing_country} differs from shipping country "
            f"{seen.shipping_country}"
        )
    risky = {s.casefold() for s in rules.high_risk_skus}
    flagged = sorted({s for s in seen.skus if s.casefold() in risky})
    if flagged:
        reasons.append(f"high-risk SKU(s) {', '.join(flagged)}")
    return reasons
