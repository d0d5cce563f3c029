"""Explanations: per-candidate rankings, and why the chosen plan beat the runner-up.

The runner-up of an optimised plan is the cheapest plan that differs from it by one unit
(a line, or a ship-together group) moved to another feasible option; its cost deltas by
term say what the chosen plan saved.
"""

from __future__ import annotations

import math

from routing.allocation import EPS, Option, Problem, Solution, _State
from routing.classic import mode_score, sort_candidates
from routing.domain import Mode
from routing.fences import Candidate, LineCandidates
from routing.options import Ratings
from routing.plan import Explanation, LineRanking, RankEntry

TERMS = ("shipping", "handling", "stockout_risk_cost", "late_cost")


def rank_line(
    lc: LineCandidates, mode: Mode, ratings: Ratings, fixed: dict[str, float]
) -> LineRanking:
    """Eligible nodes ranked by the mode's criterion, then fenced nodes with their reasons."""
    q = lc.line.qty
    elig = lc.eligible()
    if mode in (Mode.PREDICTIVE, Mode.COST):
        scored: list[tuple[float, str, Candidate]] = []
        for c in elig:
            nid = c.node.node_id
            scored.append((ratings[(lc.index, nid)].cost(min(c.atp, q)) + fixed[nid], nid, c))
        scored.sort(key=lambda t: (t[0], t[1]))
        ordered: list[tuple[float | None, Candidate]] = [(s, c) for s, _, c in scored]
    else:
        ordered = [(mode_score(mode, c), c) for c in sort_candidates(mode, elig)]
    entries: list[RankEntry] = []
    for rank, (score, c) in enumerate(ordered, start=1):
        r = ratings[(lc.index, c.node.node_id)]
        t = r.terms(min(c.atp, q))
        entries.append(
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
                shipping=t.shipping,
                handling=t.handling,
                stockout_risk_cost=t.stockout_risk_cost,
                late_cost=t.late_cost,
                p_stockout=t.p_stockout,
                days_p50=t.days_p50,
                days_p90=t.days_p90,
                p_late=t.p_late,
            )
        )
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
        for i, o in enumerate(opts):
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
