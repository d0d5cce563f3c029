"""Ratings: the expected cost in currency of serving a line (part) from a node.

shipping(distance, weight, zone) + handling + p_stockout × reroute_cost
+ P(late) × late_penalty + E[late days] × late_cost_per_day, each weighted per product group. Delivery days are a
lognormal fitted to the predicted p50/p90, so p_late = P(days > promise) is smooth in the
predictions instead of a step at the median.

Delivery days include the node's queue (:func:`queue_days`): a node packs its backlog and
the orders taken before this one first, so a parcel sent to a node loaded past
``load_knee`` of its daily capacity misses the day's carrier pick-up. The models see
yesterday's backlog but never today's orders, so without this term the router would keep
filling the cheapest node up to its capacity fence and its queue (and lateness) would grow
day after day.

Delivery days also include the wait for the node's next carrier pick-up
(:func:`cutoff_wait_days`): an order placed after a node's cut-off (or on a day it ships
nothing) leaves a day later. The delivery model is not given the order's hour, so it
predicts the average over orders placed before and after the cut-off.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import numpy as np

from routing.calendar import MAX_SHIP_SEARCH_DAYS, NodeCalendar, zone
from routing.domain import Node, Prediction
from routing.geo import FloatArray
from routing.policy import GroupRules

Z90 = 1.2815515655446004  # standard normal 90th percentile
_SQRT2 = math.sqrt(2.0)
_MIN_DAYS = 0.05
_MIN_SIGMA = 1e-3


def lateness(days_p50: float, days_p90: float, promise_days: float) -> tuple[float, float]:
    """(P(days > promise), E[max(days - promise, 0)]) under a lognormal through p50 and p90
    (:func:`lateness_array` of one pair)."""
    p_late, late_days = lateness_array(np.array([days_p50]), np.array([days_p90]), promise_days)
    return float(p_late[0]), float(late_days[0])


def queue_days(load: float | None, rules: GroupRules) -> float:
    """Expected days a new parcel waits in a node's queue beyond the normal same-day hand-over
    (:func:`queue_days_array` of one node)."""
    return float(queue_days_array(np.array([math.nan if load is None else load]), rules)[0])


def queue_days_array(load: FloatArray, rules: GroupRules) -> FloatArray:
    """Expected days a new parcel waits in each node's queue beyond the normal same-day
    hand-over.

    ``load`` is the work ahead of the parcel in days of the node's capacity
    (``Node.load``: backlog + orders taken today over daily capacity; NaN: no capacity
    limit, waits 0). A node packs about ``load_knee`` of a day's capacity in time for the
    carrier's pick-up: below it the parcel leaves today (0); from the knee to a full day the
    expected wait rises to one day (the share of the day's packing done after the pick-up);
    every further day of capacity ahead of it adds a day.
    """
    knee = rules.load_knee
    waits = load > knee  # NaN never waits
    if not waits.any():
        return np.zeros(len(load))
    ramp = 1.0 if knee >= 1.0 else _pymin((load - knee) / (1.0 - knee), 1.0)
    return np.where(waits, ramp + _pymax(load - 1.0, 0.0), 0.0)


def cutoff_wait_days(node: Node, now: datetime) -> float:
    """Whole days between ``now`` and the node's next carrier pick-up (its calendar's next
    cut-off): 0 before today's cut-off, 1 after it, more when the next days ship nothing.
    A node without a calendar ships every day (0); one whose calendar ships nothing within
    a year is left to the calendar fences (0 here)."""
    cal = node.calendar
    if cal is None:
        return 0.0
    today = now.astimezone(zone(node.timezone)).date()
    for k in range(MAX_SHIP_SEARCH_DAYS):
        at = _cutoff_on(cal, today + timedelta(days=k), node.timezone)
        if at is not None and at > now:
            return float(k)
    return 0.0


@lru_cache(maxsize=8192)
def _cutoff_on(cal: NodeCalendar, day: date, tz_name: str) -> datetime | None:
    """``NodeCalendar.cutoff_on``, remembered: every order asks it for every candidate node."""
    return cal.cutoff_on(day, tz_name)


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


def late_cost(p_late: float, late_days: float, rules: GroupRules) -> float:
    """Cost of missing the promise for one line part: the chance it is late times the
    one-off ``late_penalty`` (the customer's contact, the goodwill credit), plus the
    (expected or realised) days past the promise times ``late_cost_per_day``."""
    return rules.weight_late * (p_late * rules.late_penalty + late_days * rules.late_cost_per_day)


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
    late = late_cost(p_late, late_days, rules)
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
    queue: float = 0.0,
) -> PairRating:
    """Price a (line, node) pair: :func:`rate_line` of one pair. ``prediction=None`` is
    ``cost`` mode: no risk, rule days. ``queue`` (days: :func:`cutoff_wait_days` plus
    :func:`queue_days`) is added to both delivery quantiles."""
    p = prediction or Prediction(0.0, 0.0, 0.0)
    columns = rate_line(
        weight_kg=weight_kg,
        handling_cost=np.array([handling_cost], dtype=np.float64),
        distance_km=[distance_km],
        predicted=np.array([prediction is not None]),
        p_stockout=np.array([p.p_stockout]),
        days_p50=np.array([p.days_p50]),
        days_p90=np.array([p.days_p90]),
        rules=rules,
        promise_days=promise_days,
        queue=np.array([queue], dtype=np.float64),
    )
    return LineRates([""], [distance_km], columns).rating(0)


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


def congestion_cost(load: float | None, price: float) -> float:
    """:func:`congestion_array` of one node."""
    return float(congestion_array(np.array([math.nan if load is None else load]), price)[0])


def congestion_array(load: FloatArray, price: float) -> FloatArray:
    """Opportunity cost of taking a parcel's place at each node: ``price`` × load², capped at
    a full day (``load`` as in :func:`queue_days_array`, NaN: no capacity limit, 0). Zero at
    an idle node, ``price`` at a full one: fast nodes that fill up every day are kept for the
    orders that gain most from them instead of going to whichever orders arrive first."""
    if price <= 0.0:
        return np.zeros(len(load))
    u = _pymin(_pymax(load, 0.0), 1.0)
    return np.where(np.isnan(load), 0.0, price * u * u)


def shipment_cost(distance_km: float | None, rules: GroupRules, per_shipment_cost: float) -> float:
    """:func:`shipment_costs` of one node."""
    d = np.array([math.nan if distance_km is None else distance_km])
    return float(shipment_costs(d, rules, per_shipment_cost)[0])


def shipment_costs(
    distance_km: FloatArray, rules: GroupRules, per_shipment_cost: float
) -> FloatArray:
    """Fixed cost of opening a parcel at each node: the zone's parcel fee plus the policy's
    (NaN distance: priced as the policy's unknown distance)."""
    fee = np.array([z[1] for z in rules.zones], dtype=np.float64)
    out: FloatArray = fee[_zone_band(_known(distance_km, rules), rules)] + per_shipment_cost
    return out


def _known(distance_km: FloatArray, rules: GroupRules) -> FloatArray:
    """Distances with NaN (unknown) read as the policy's ``unknown_distance_km``."""
    return np.where(np.isnan(distance_km), rules.unknown_distance_km, distance_km)


def _zone_band(d: FloatArray, rules: GroupRules) -> np.ndarray:
    """Index of each distance's zone: the first band whose bound it does not exceed, the
    last band beyond them all (``GroupRules.zone``)."""
    bounds = np.array([z[0] for z in rules.zones], dtype=np.float64)
    return np.minimum(np.searchsorted(bounds, d, side="left"), len(bounds) - 1)


def _pymax(a: FloatArray, b: FloatArray | float) -> FloatArray:
    """Elementwise ``max(a, b)`` as Python computes it (``a`` unless ``b > a``, NaN too)."""
    return np.where(b > a, b, a)


def _each(fn: Callable[[float], float], x: FloatArray) -> FloatArray:
    """``fn`` of ``math`` on every element: numpy's own log/exp differ in the last bit on a
    few per cent of values, and a rating must not depend on how many pairs an order has."""
    return np.fromiter(map(fn, x.tolist()), np.float64, len(x))


def lateness_array(
    days_p50: FloatArray, days_p90: FloatArray, promise_days: float | FloatArray
) -> tuple[FloatArray, FloatArray]:
    """:func:`lateness` of many pairs (one promise, or one per pair), bit for bit."""
    p50 = _pymax(days_p50, _MIN_DAYS)
    p90 = _pymax(days_p90, p50)
    mu = _each(math.log, p50)
    sigma = _pymax((_each(math.log, p90) - mu) / Z90, _MIN_SIGMA)
    mean = _each(math.exp, mu + sigma * sigma / 2)
    if not isinstance(promise_days, np.ndarray):
        promise = promise_days
        if promise <= 0:
            return np.ones(len(p50)), mean - promise
        log_promise: float | FloatArray = math.log(promise)
        late: np.ndarray | None = None
    else:
        promise_arr = np.asarray(promise_days, dtype=np.float64)
        late = promise_arr > 0
        if not late.any():
            return np.ones(len(p50)), mean - promise_arr
        # a few distinct promises per order: math.log of each once
        values, at = np.unique(np.where(late, promise_arr, 1.0), return_inverse=True)
        log_promise = np.array([math.log(v) for v in values.tolist()])[at]
    d2 = (mu - log_promise) / sigma
    p_late = 0.5 * (1.0 + _each(math.erf, d2 / _SQRT2))
    expected_late = mean * (0.5 * (1.0 + _each(math.erf, (d2 + sigma) / _SQRT2)))
    if late is None:
        return p_late, _pymax(expected_late - promise * p_late, 0.0)
    expected_late = _pymax(expected_late - promise_arr * p_late, 0.0)
    return np.where(late, p_late, 1.0), np.where(late, expected_late, mean - promise_arr)


class LineRates:
    """Ratings of one line's rated nodes as arrays (what :func:`rate_pair` gives each pair);
    a :class:`PairRating` is built only for the pairs someone asks for."""

    __slots__ = (
        "_pos",
        "days_p50",
        "days_p90",
        "distance_km",
        "fixed",
        "handling",
        "late_cost",
        "node_ids",
        "p_late",
        "p_stockout",
        "per_unit_shipping",
        "stockout_risk_cost",
    )

    def __init__(
        self,
        node_ids: list[str],
        distance_km: Sequence[float | None] | FloatArray,
        columns: dict[str, FloatArray],
    ) -> None:
        self.node_ids = node_ids
        self._pos: dict[str, int] | None = None
        self.distance_km = distance_km
        self.per_unit_shipping = columns["per_unit_shipping"]
        self.fixed = columns["fixed"]
        self.handling = columns["handling"]
        self.stockout_risk_cost = columns["stockout_risk_cost"]
        self.late_cost = columns["late_cost"]
        self.p_stockout = columns["p_stockout"]
        self.days_p50 = columns["days_p50"]
        self.days_p90 = columns["days_p90"]
        self.p_late = columns["p_late"]

    @property
    def pos(self) -> dict[str, int]:
        """Node id -> index, made on the first lookup by node."""
        if self._pos is None:
            self._pos = {n: k for k, n in enumerate(self.node_ids)}
        return self._pos

    def index(self, node_id: str) -> int | None:
        """Where ``node_id`` is, or ``None``: a scan of the ids for the few lookups a
        decision makes per line (the plan's nodes), the index once it is made."""
        if self._pos is not None:
            return self._pos.get(node_id)
        try:
            return self.node_ids.index(node_id)
        except ValueError:
            return None

    def rating(self, k: int) -> PairRating:
        return PairRating(
            per_unit_shipping=float(self.per_unit_shipping[k]),
            fixed=float(self.fixed[k]),
            handling=float(self.handling[k]),
            stockout_risk_cost=float(self.stockout_risk_cost[k]),
            late_cost=float(self.late_cost[k]),
            p_stockout=float(self.p_stockout[k]),
            days_p50=float(self.days_p50[k]),
            days_p90=float(self.days_p90[k]),
            p_late=float(self.p_late[k]),
            distance_km=_optional(self.distance_km[k]),
        )


def _optional(d: float | None) -> float | None:
    """A distance as ``PairRating`` holds it: a float, or ``None`` when unknown (NaN)."""
    return None if d is None or math.isnan(d) else float(d)


class RatingTable(Mapping[tuple[int, str], PairRating]):
    """``(line index, node id) -> PairRating`` over :class:`LineRates`, built on demand."""

    __slots__ = ("_made", "lines")

    def __init__(self, lines: dict[int, LineRates]) -> None:
        self.lines = lines
        self._made: dict[tuple[int, str], PairRating] = {}

    def __getitem__(self, key: tuple[int, str]) -> PairRating:
        made = self._made.get(key)
        if made is None:
            rates = self.lines.get(key[0])
            k = None if rates is None else rates.index(key[1])
            if rates is None or k is None:
                raise KeyError(key)
            made = self._made[key] = rates.rating(k)
        return made

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        rates = self.lines.get(key[0])
        return rates is not None and key[1] in rates.pos

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for i, rates in self.lines.items():
            for n in rates.node_ids:
                yield (i, n)

    def __len__(self) -> int:
        return sum(len(r.node_ids) for r in self.lines.values())


def rate_line(
    *,
    weight_kg: float | FloatArray,
    handling_cost: FloatArray,
    distance_km: Sequence[float | None] | FloatArray,
    predicted: FloatArray | None,
    p_stockout: FloatArray,
    days_p50: FloatArray,
    days_p90: FloatArray,
    rules: GroupRules,
    promise_days: float | FloatArray,
    queue: FloatArray,
) -> dict[str, FloatArray]:
    """:func:`rate_pair` of one line at many nodes, bit for bit; or of many lines with the
    same ``rules`` at once, ``weight_kg`` and ``promise_days`` then given per pair.
    ``distance_km``: ``None`` or NaN where unknown. ``predicted`` marks the pairs whose
    prediction columns hold a model's numbers; the others (``None``: all) are rated as
    ``cost`` mode does, with rule days and no stockout risk."""
    if not isinstance(distance_km, np.ndarray):
        distance_km = np.array([math.nan if x is None else x for x in distance_km], np.float64)
    d = _known(distance_km, rules)
    p50_rule = rules.base_days + d / rules.km_per_day
    p90_rule = p50_rule * rules.p90_ratio
    if predicted is None:
        p_stock, p50, p90 = np.zeros(len(d)), p50_rule, p90_rule
    else:
        p_stock = np.where(predicted, _pymin(_pymax(p_stockout, 0.0), 1.0), 0.0)
        p50 = np.where(predicted, days_p50, p50_rule)
        p90 = np.where(predicted, _pymax(days_p90, days_p50), p90_rule)
    waits = queue > 0.0
    p50 = np.where(waits, p50 + queue, p50)
    p90 = np.where(waits, p90 + queue, p90)
    p_late, late_days = lateness_array(p50, p90, promise_days)
    per_kg = np.array([z[2] for z in rules.zones], dtype=np.float64)
    weight = _pymax(weight_kg, 0.0) if isinstance(weight_kg, np.ndarray) else max(weight_kg, 0.0)
    per_unit = rules.weight_shipping * per_kg[_zone_band(d, rules)] * weight
    hand = rules.weight_handling * handling_cost
    stockout = rules.weight_stockout * p_stock * rules.reroute_cost
    late = rules.weight_late * (p_late * rules.late_penalty + late_days * rules.late_cost_per_day)
    return {
        "per_unit_shipping": per_unit,
        "fixed": hand + stockout + late,
        "handling": hand,
        "stockout_risk_cost": stockout,
        "late_cost": late,
        "p_stockout": p_stock,
        "days_p50": p50,
        "days_p90": p90,
        "p_late": p_late,
    }


def _pymin(a: FloatArray, b: float) -> FloatArray:
    """Elementwise ``min(a, b)`` as Python computes it (``a`` unless ``b < a``)."""
    return np.where(b < a, b, a)
