"""Explanations: per-candidate rankings, and why the chosen plan beat the runner-up.

The runner-up of an optimised plan is the cheapest plan that differs from it by one unit
(a line, or a ship-together group) moved to another feasible option; its cost deltas by
term say what the chosen plan saved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from routing.allocation import EPS, Option, Options, Problem, Solution, _State
from routing.classic import mode_score, sort_candidates
from routing.domain import Mode
from routing.fences import Candidate, LineCandidates
from routing.options import Ratings
from routing.plan import Explanation, LineRanking, RankEntry
from routing.ratings import LineRates, RatingTable

TERMS = ("shipping", "handling", "stockout_risk_cost", "late_cost")


def rank_line(
    lc: LineCandidates, mode: Mode, ratings: RatingTable, fixed: dict[str, float]
) -> LineRanking:
    """Eligible nodes ranked by the mode's criterion, then fenced nodes with their reasons."""
    q = lc.line.qty
    entries = _ranked(lc.eligible(), ratings.lines[lc.index], mode, q, fixed)
    for c in lc.candidates:
        if c.fence is not None:
            entries.append(
                RankEntry(
                    node_id=c.node.node_id,
                    rank=None,
                    eligible=False,
                    reason_code=c.fence,
                    reason=c.reason,
                    available=c.row.available if c.row.in_stock else 0.0,
                    priority=c.node.priority,
                    distance_km=c.distance_km,
                    score=None,
                )
            )
    return LineRanking(lc.line.line_id, lc.line.sku, q, tuple(entries))


def _ranked(
    elig: list[Candidate], rates: LineRates, mode: Mode, q: float, fixed: dict[str, float]
) -> list[RankEntry]:
    """The eligible entries of :func:`rank_line` from the line's rating arrays: the same
    numbers (``PairRating.terms`` of ``min(atp, qty)``) without a rating object per node."""
    atp = np.array([c.atp for c in elig], dtype=np.float64)
    take = np.where(q < atp, q, atp)
    ship = rates.per_unit_shipping * take
    if mode in (Mode.PREDICTIVE, Mode.COST):
        node_fixed = np.array([fixed[c.node.node_id] for c in elig], dtype=np.float64)
        cost = ship + rates.fixed + node_fixed
        # candidates come in node-id order, so a stable sort breaks ties by node id
        order = np.argsort(cost, kind="stable").tolist()
        scores: list[float | None] = cost.tolist()
        ordered = [(scores[k], elig[k], k) for k in order]
    else:
        pos = {id(c): k for k, c in enumerate(elig)}
        ordered = [(mode_score(mode, c), c, pos[id(c)]) for c in sort_candidates(mode, elig)]
    ship_l = ship.tolist()
    hand, stock, late = (
        rates.handling.tolist(),
        rates.stockout_risk_cost.tolist(),
        rates.late_cost.tolist(),
    )
    p_s, p50, p90, p_l = (
        rates.p_stockout.tolist(),
        rates.days_p50.tolist(),
        rates.days_p90.tolist(),
        rates.p_late.tolist(),
    )
    return [
        RankEntry(
            node_id=c.node.node_id,
            rank=rank,
            eligible=True,
            reason_code=None,
            reason=None,
            available=c.atp,
            priority=c.node.priority,
            distance_km=c.distance_km,
            score=score,
            shipping=ship_l[k],
            handling=hand[k],
            stockout_risk_cost=stock[k],
            late_cost=late[k],
            p_stockout=p_s[k],
            days_p50=p50[k],
            days_p90=p90[k],
            p_late=p_l[k],
        )
        for rank, (score, c, k) in enumerate(ordered, start=1)
    ]


def _describe(o: Option, lcs: list[LineCandidates]) -> str:
    if not o.parts:
        return "leave the line unserved"
    bits = [f"line {lcs[p.line].line.line_id} x{p.qty:g} from {p.node_id}" for p in o.parts]
    if o.unmet > EPS:
        bits.append(f"{o.unmet:g} unserved")
    return ", ".join(bits)


def _term_sum(o: Option, ratings: Ratings) -> dict[str, float]:
    out = dict.fromkeys(TERMS, 0.0)
    for p in o.parts:
        t = ratings[(p.line, p.node_id)].terms(p.qty)
        for k in TERMS:
            out[k] += getattr(t, k)
    return out


def _best_single(
    st: _State, opts: Options, chosen: int, base: float
) -> tuple[float, tuple[object, ...], int] | None:
    """``explain_optimised``'s scan over a unit's one-node options, as arrays: the least
    (cost delta, key) of the feasible ones other than the chosen one, and its index."""
    q, key, used, left, fixed = opts.qty, opts.sku, st.used, st.left, st.p.fixed
    ids = opts.node_ids
    is_new = np.array([n not in used for n in ids], dtype=bool)
    ok = np.array([left.get((n, key), 0.0) >= q - EPS for n in ids], dtype=bool)
    if st.max_ship is not None and len(used) + 1 > st.max_ship:
        ok &= ~is_new
    if 0 <= chosen < len(ids):
        ok[chosen] = False
    if not ok.any():
        return None
    cost = np.asarray(opts.costs, dtype=np.float64)
    extra = np.array([fixed[n] for n in ids], dtype=np.float64)
    delta = np.where(is_new, cost + extra, cost) - base
    delta = np.where(ok, delta, math.inf)
    k = int(np.argmin(delta))  # ties: the first, i.e. the lowest node id (the key's order)
    if not math.isfinite(float(delta[k])):
        return None
    return float(delta[k]), ((ids[k], -q, opts.line),), k


def explain_optimised(
    p: Problem,
    sol: Solution,
    lcs: list[LineCandidates],
    ratings: Ratings,
    chosen_total: float,
    summary: str,
) -> Explanation:
    """Find the best one-move alternative to the chosen plan and report what it would cost."""
    st = _State(p)
    for u, i in enumerate(sol.choice):
        st.apply(p.units[u][i])
    best: tuple[float, tuple[object, ...], int, int] | None = None
    for u, opts in enumerate(p.units):
        cur = opts[sol.choice[u]]
        st.undo(cur)
        saved = sum(p.fixed[n] for n in cur.nodes if n not in st.used)
        rest: Sequence[Option] = opts
        start = 0
        if isinstance(opts, Options) and opts.node_ids:
            single = _best_single(st, opts, sol.choice[u], cur.cost + saved)
            if single is not None and (best is None or single[:2] < best[:2]):
                best = (single[0], single[1], u, single[2])
            rest, start = opts.rest, len(opts.node_ids)
        for i, o in enumerate(rest, start):
            if i == sol.choice[u] or o.unmet > cur.unmet + EPS or not st.feasible(o):
                continue
            delta = st.marginal(o) - (cur.cost + saved)
            cand = (delta, o.key, u, i)
            if best is None or cand[:2] < best[:2]:
                best = cand
        st.apply(cur)
    if best is None or not math.isfinite(best[0]):
        return Explanation(summary + "; no feasible alternative plan exists", chosen_total)
    delta, _, u, i = best
    cur, alt = p.units[u][sol.choice[u]], p.units[u][i]
    a, b = _term_sum(cur, ratings), _term_sum(alt, ratings)
    deltas = {k: b[k] - a[k] for k in TERMS}
    deltas["shipment_fixed"] = delta - (alt.cost - cur.cost)
    big = sorted(((v, k) for k, v in deltas.items() if abs(v) > 0.005), reverse=True)
    why = (
        ", ".join(f"{k.replace('_', ' ')} {v:+.2f}" for v, k in big)
        or "equal terms, tie broken by node id"
    )
    text = _describe(alt, lcs)
    return Explanation(
        summary=f"{summary}; runner-up ({text}) costs {delta:+.2f} more: {why}",
        chosen_total=chosen_total,
        runner_up_total=chosen_total + delta,
        runner_up=text,
        deltas=deltas,
    )
