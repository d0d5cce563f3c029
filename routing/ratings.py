"""Ratings: the expected cost in currency of serving a line (part) from a node.

shipping(distance, weight, zone) + handling + p_stockout × reroute_cost
+ E[late days] × late_cost_per_day, each weighted per product group. Delivery days are a
lognormal fitted to the predicted p50/p90, so p_late = P(days > promise) is smooth in the
predictions instead of a step at the median.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from routing.domain import Prediction
from routing.policy import GroupRules

Z90 = 1.2815515655446004  # standard normal 90th percentile
_SQRT2 = math.sqrt(2.0)
_MIN_DAYS = 0.05
_MIN_SIGMA = 1e-3


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def lateness(days_p50: float, days_p90: float, promise_days: float) -> tuple[float, float]:
    """(P(days > promise), E[max(days - promise, 0)]) under a lognormal through p50 and p90."""
    p50 = max(days_p50, _MIN_DAYS)
    p90 = max(days_p90, p50)
    mu = math.log(p50)
    sigma = max((math.log(p90) - mu) / Z90, _MIN_SIGMA)
    if promise_days <= 0:
        return 1.0, math.exp(mu + sigma * sigma / 2) - promise_days
    d2 = (mu - math.log(promise_days)) / sigma
    p_late = _phi(d2)
    expected_late = math.exp(mu + sigma * sigma / 2) * _phi(d2 + sigma) - promise_days * p_late
    return p_late, max(expected_late, 0.0)


def rule_days(distance_km: float, rules: GroupRules) -> tuple[float, float]:
    """Delivery-day quantiles without a model: base days plus distance over a speed."""
    p50 = rules.base_days + distance_km / rules.km_per_day
    return p50, p50 * rules.p90_ratio


@dataclass(frozen=True, slots=True)
class Terms:
    """Cost terms of one line part at one node, with the prediction they came from."""

    shipping: float
    handling: float
    stockout_risk_cost: float
    late_cost: float
    total: float
    p_stockout: float
    days_p50: float
    days_p90: float
    p_late: float
    distance_km: float | None


@dataclass(frozen=True, slots=True)
class PairRating:
    """Everything about a (line, node) pair except quantity, so parts are cheap to price."""

    per_unit_shipping: float
    fixed: float  # handling + stockout + lateness, per line part
    handling: float
    stockout_risk_cost: float
    late_cost: float
    p_stockout: float
    days_p50: float
    days_p90: float
    p_late: float
    distance_km: float | None

    def terms(self, qty: float) -> Terms:
        ship = self.per_unit_shipping * qty
        return Terms(
            shipping=ship,
            handling=self.handling,
            stockout_risk_cost=self.stockout_risk_cost,
            late_cost=self.late_cost,
            total=ship + self.fixed,
            p_stockout=self.p_stockout,
            days_p50=self.days_p50,
            days_p90=self.days_p90,
            p_late=self.p_late,
            distance_km=self.distance_km,
        )

    def cost(self, qty: float) -> float:
        return self.per_unit_shipping * qty + self.fixed


def unit_shipping(weight_kg: float, distance_km: float | None, rules: GroupRules) -> float:
    """Shipping per unit: the zone's rate per kg (unknown distance priced as the policy says)."""
    d = rules.unknown_distance_km if distance_km is None else distance_km
    return rules.weight_shipping * rules.zone(d)[2] * max(weight_kg, 0.0)


def handling(handling_cost: float, rules: GroupRules) -> float:
    """Handling of one line part at a node."""
    return rules.weight_handling * handling_cost


def stockout_cost(p_stockout: float, rules: GroupRules) -> float:
    """Expected reroute cost of one line part: risk of rejection times the reroute cost."""
    return rules.weight_stockout * p_stockout * rules.reroute_cost


def late_cost(late_days: float, rules: GroupRules) -> float:
    """Cost of (expected or realised) days past the promise for one line part."""
    return rules.weight_late * late_days * rules.late_cost_per_day


def _pair(
    per_unit: float,
    handling_: float,
    p_stock: float,
    p50: float,
    p90: float,
    p_late: float,
    late_days: float,
    distance_km: float | None,
    rules: GroupRules,
) -> PairRating:
    stockout = stockout_cost(p_stock, rules)
    late = late_cost(late_days, rules)
    return PairRating(
        per_unit_shipping=per_unit,
        fixed=handling_ + stockout + late,
        handling=handling_,
        stockout_risk_cost=stockout,
        late_cost=late,
        p_stockout=p_stock,
        days_p50=p50,
        days_p90=p90,
        p_late=p_late,
        distance_km=distance_km,
    )


def rate_pair(
    *,
    weight_kg: float,
    handling_cost: float,
    distance_km: float | None,
    prediction: Prediction | None,
    rules: GroupRules,
    promise_days: float,
) -> PairRating:
    """Price a (line, node) pair. ``prediction=None`` is ``cost`` mode: no risk, rule days."""
    if prediction is None:
        p_stock = 0.0
        d = rules.unknown_distance_km if distance_km is None else distance_km
        p50, p90 = rule_days(d, rules)
    else:
        p_stock = min(max(prediction.p_stockout, 0.0), 1.0)
        p50, p90 = prediction.days_p50, max(prediction.days_p90, prediction.days_p50)
    p_late, late_days = lateness(p50, p90, promise_days)
    return _pair(
        unit_shipping(weight_kg, distance_km, rules),
        handling(handling_cost, rules),
        p_stock,
        p50,
        p90,
        p_late,
        late_days,
        distance_km,
        rules,
    )


def rate_realised(
    *,
    weight_kg: float,
    handling_cost: float,
    distance_km: float | None,
    rules: GroupRules,
    delivery_days: float,
    promise_days: float,
) -> PairRating:
    """Price a pair with hindsight: the shelf is known (no rejection risk) and the parcel's
    realised delivery days replace the predicted quantiles, so lateness is a number, not an
    expectation. Same terms and weights as :func:`rate_pair`."""
    late_days = max(delivery_days - promise_days, 0.0)
    return _pair(
        unit_shipping(weight_kg, distance_km, rules),
        handling(handling_cost, rules),
        0.0,
        delivery_days,
        delivery_days,
        1.0 if late_days > 0 else 0.0,
        late_days,
        distance_km,
        rules,
    )


def shipment_cost(distance_km: float | None, rules: GroupRules, per_shipment_cost: float) -> float:
    """Fixed cost of opening a parcel at a node: the zone's parcel fee plus the policy's."""
    return rules.zone(distance_km)[1] + per_shipment_cost
