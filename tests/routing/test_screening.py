"""Screening rules: each one names its reason; unset rules never hold."""

from __future__ import annotations

import pytest

from routing import InvalidPolicy, policy_from_dict
from routing.screening import ScreeningInput, ScreeningRules, screen

BASE = ScreeningInput(order_value=100.0, skus=("A", "B"), shipping_country="US")


def test_no_rules_hold_nothing() -> None:
    rules = ScreeningRules()
    assert not rules.active
    assert screen(rules, BASE) == []


@pytest.mark.parametrize(
    ("rules", "seen", "reason"),
    [
        ({"max_order_value": 50}, {}, "order value 100.00 is over the 50.00 limit"),
        ({"max_orders_per_destination": 3}, {"recent_to_destination": 3}, "3 other orders to"),
        ({"max_orders_per_customer": 1}, {"recent_by_customer": 2}, "2 other orders by this"),
        ({"hold_on_country_mismatch": True}, {"billing_country": "BR"}, "billing country BR"),
        ({"high_risk_skus": ["b"]}, {}, "high-risk SKU(s) B"),
    ],
)
def test_each_rule_names_its_reason(rules: dict, seen: dict, reason: str) -> None:  # type: ignore[type-arg]
    from dataclasses import replace

    got = screen(ScreeningRules(**rules), replace(BASE, **seen))
    assert len(got) == 1 and got[0].startswith(reason)


def test_under_the_limits_nothing_is_held() -> None:
    rules = ScreeningRules(
        max_order_value=500,
        max_orders_per_destination=3,
        hold_on_country_mismatch=True,
        high_risk_skus=["Z"],
    )
    from dataclasses import replace

    assert screen(rules, replace(BASE, recent_to_destination=2, billing_country="us")) == []


def test_channel_rules_replace_the_policy_rules() -> None:
    policy = policy_from_dict(
        {
            "screening": {"max_order_value": 100},
            "channels": {"marketplace": {"screening": {"high_risk_skus": ["X"]}}},
        }
    )
    assert policy.screening_for("web").max_order_value == 100
    assert policy.screening_for("marketplace").max_order_value is None
    with pytest.raises(InvalidPolicy, match=r"screening\.max_order_value"):
        policy_from_dict({"screening": {"max_order_value": -1}})
