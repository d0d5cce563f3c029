"""The routing decision: allocations, what is missing, rankings and the explanation.

``plan_to_dict`` is the JSON contract shared by the API, the CLI and docs/formats.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routing.domain import Mode
from routing.ratings import Terms


@dataclass(frozen=True, slots=True)
class Allocation:
    """A positive quantity of one line sent to one node, with the terms it was rated on."""

    line_id: str
    sku: str
    node_id: str
    qty: float
    terms: Terms

    @property
    def total(self) -> float:
        return self.terms.total


@dataclass(frozen=True, slots=True)
class Unallocated:
    line_id: str
    sku: str
    qty: float


@dataclass(frozen=True, slots=True)
class Shipment:
    """One parcel: a node, the lines it carries and its fixed cost (parcel fee + policy)."""

    node_id: str
    line_ids: tuple[str, ...]
    fixed_cost: float


@dataclass(frozen=True, slots=True)
class RankEntry:
    """A candidate node for a line: its rank and cost terms, or the fence that removed it."""

    node_id: str
    rank: int | None
    eligible: bool
    reason_code: str | None
    reason: str | None
    available: float
    priority: int
    distance_km: float | None
    score: float | None  # standalone cost (or the mode's sort key) used for the rank
    shipping: float | None = None
    handling: float | None = None
    stockout_risk_cost: float | None = None
    late_cost: float | None = None
    p_stockout: float | None = None
    days_p50: float | None = None
    days_p90: float | None = None
    p_late: float | None = None


@dataclass(frozen=True, slots=True)
class LineRanking:
    """One line's candidates as the answer lists them (``route(ranking=...)``): every one,
    or the best ``ranking`` eligible nodes, each allocated node and up to ``ranking`` fenced
    ones; the counts are over every candidate either way."""

    line_id: str
    sku: str
    qty: float
    candidates: tuple[RankEntry, ...]
    eligible_count: int = 0
    #: fenced candidates per reason code (codes in ``fences.FENCE_ORDER``)
    fenced_count: tuple[tuple[str, int], ...] = ()
    listed_all: bool = True


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why this plan: a one-line summary and, when one exists, the runner-up it beat."""

    summary: str
    chosen_total: float
    runner_up_total: float | None = None
    runner_up: str | None = None
    deltas: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """The decision. When not shippable and partial is not allowed, ``allocations`` is empty
    and ``best_effort`` shows what could have been served; ``unallocated`` is what is missing."""

    order_id: str
    mode: Mode
    shippable: bool
    partial_allowed: bool
    allocations: tuple[Allocation, ...]
    unallocated: tuple[Unallocated, ...]
    best_effort: tuple[Allocation, ...]
    shipments_detail: tuple[Shipment, ...]
    ranking: tuple[LineRanking, ...]
    explanation: Explanation
    total_cost: float
    optimal: bool
    method: str
    search_states: int
    policy_version: str

    @property
    def shipments(self) -> int:
        return len(self.shipments_detail)


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _alloc(a: Allocation) -> dict[str, Any]:
    t = a.terms
    return {
        "line_id": a.line_id,
        "sku": a.sku,
        "node_id": a.node_id,
        "qty": a.qty,
        "shipping": _r(t.shipping),
        "handling": _r(t.handling),
        "stockout_risk_cost": _r(t.stockout_risk_cost),
        "late_cost": _r(t.late_cost),
        "total": _r(t.total),
        "p_stockout": _r(t.p_stockout),
        "days_p50": _r(t.days_p50),
        "days_p90": _r(t.days_p90),
        "p_late": _r(t.p_late),
        "distance_km": _r(t.distance_km, 1),
    }


def _entry(e: RankEntry) -> dict[str, Any]:
    km = e.distance_km
    if not e.eligible:
        return {
            "node_id": e.node_id,
            "rank": e.rank,
            "eligible": False,
            "available": e.available,
            "priority": e.priority,
            "distance_km": None if km is None else round(km, 1),
            "reason_code": e.reason_code,
            "reason": e.reason,
        }
    # every listed candidate of every line passes here: one dict display, _r inlined
    return {
        "node_id": e.node_id,
        "rank": e.rank,
        "eligible": True,
        "available": e.available,
        "priority": e.priority,
        "distance_km": None if km is None else round(km, 1),
        "score": None if (v := e.score) is None else round(v, 4),
        "shipping": None if (v := e.shipping) is None else round(v, 4),
        "handling": None if (v := e.handling) is None else round(v, 4),
        "stockout_risk_cost": None if (v := e.stockout_risk_cost) is None else round(v, 4),
        "late_cost": None if (v := e.late_cost) is None else round(v, 4),
        "p_stockout": None if (v := e.p_stockout) is None else round(v, 4),
        "days_p50": None if (v := e.days_p50) is None else round(v, 4),
        "days_p90": None if (v := e.days_p90) is None else round(v, 4),
        "p_late": None if (v := e.p_late) is None else round(v, 4),
    }


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """JSON-ready plan; only positive quantities appear in ``allocations``."""
    ex = plan.explanation
    return {
        "order_id": plan.order_id,
        "mode": plan.mode,
        "shippable": plan.shippable,
        "partial_allowed": plan.partial_allowed,
        "allocations": [_alloc(a) for a in plan.allocations],
        "unallocated": [
            {"line_id": u.line_id, "sku": u.sku, "qty": u.qty} for u in plan.unallocated
        ],
        "best_effort": [_alloc(a) for a in plan.best_effort],
        "shipments": plan.shipments,
        "shipment_detail": [
            {"node_id": s.node_id, "line_ids": list(s.line_ids), "fixed_cost": _r(s.fixed_cost)}
            for s in plan.shipments_detail
        ],
        "total_cost": _r(plan.total_cost),
        "ranking": [
            {
                "line_id": r.line_id,
                "sku": r.sku,
                "qty": r.qty,
                "candidates": [_entry(e) for e in r.candidates],
                "eligible_count": r.eligible_count,
                "fenced_count": dict(r.fenced_count),
                "listed_all": r.listed_all,
            }
            for r in plan.ranking
        ],
        "explanation": {
            "summary": ex.summary,
            "chosen_total": _r(ex.chosen_total),
            "runner_up_total": _r(ex.runner_up_total),
            "runner_up": ex.runner_up,
            "deltas": {k: _r(v) for k, v in ex.deltas.items()},
        },
        "search": {"optimal": plan.optimal, "method": plan.method, "states": plan.search_states},
        "policy_version": plan.policy_version,
    }
