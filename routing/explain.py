"""Explanations: per-candidate rankings, and why the chosen plan beat the runner-up.

The runner-up of an optimised plan is the cheapest plan that differs from it by one unit
(a line, or a ship-together group) moved to another feasible option; its cost deltas by
term say what the chosen plan saved.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from itertools import repeat

import numpy as np

from routing.allocation import EPS, Option, Options, Problem, Solution, _State
from routing.classic import mode_score, sort_candidates
from routing.domain import Mode
from routing.fences import FENCE_ORDER, LineCandidates
from routing.options import Ratings
from routing.plan import Explanation, LineRanking, RankEntry
from routing.ratings import LineRates, RatingTable

TERMS = ("shipping", "handling", "stockout_risk_cost", "late_cost")


def rank_line(
    lc: LineCandidates,
    mode: Mode,
    ratings: RatingTable,
    node_fixed: np.ndarray,
    top: int | None = None,
    chosen: Collection[str] = (),
) -> LineRanking:
    """Eligible nodes ranked by the mode's criterion, then fenced nodes with their reasons.

    ``top=None`` lists every candidate (fenced ones in node-id order). Otherwise the best
    ``top`` eligible nodes, any ``chosen`` node (allocated to this line) below them at its
    own rank, and the ``top`` nearest fenced nodes (unknown distances last); the counts
    cover every candidate either way, and entries are built only for what is listed.
    ``node_fixed``: the shipment fixed cost of each eligible node, in ``lc.eligible_ids`` order."""
    q = lc.line.qty
    n_elig = len(lc.eligible_pos)
    entries = _ranked(lc, ratings.lines[lc.index], mode, q, node_fixed, top, chosen)
    fenced = np.flatnonzero(lc.code >= 0)
    counts = np.bincount(lc.code[fenced], minlength=len(FENCE_ORDER)).tolist()
    listed_all = top is None or (n_elig <= top and len(fenced) <= top)
    if not listed_all and top is not None and len(fenced) > top:
        d = lc.distance[fenced]
        unknown = np.isnan(d)
        # rows come in node-id order: the row index breaks ties by node id
        fenced = fenced[np.lexsort((fenced, np.where(unknown, 0.0, d), unknown))[:top]]
    stock, nodes = lc.stock, lc.cols.nodes
    for k in fenced.tolist():
        node = nodes[int(lc.node_index[k])]
        km = float(lc.distance[k])
        entries.append(
            RankEntry(
                node_id=node.node_id,
                rank=None,
                eligible=False,
                reason_code=lc.fence(k),
                reason=lc.reason(k),
                available=float(stock.available[k]) if stock.in_stock[k] else 0.0,
                priority=node.priority,
                distance_km=None if math.isnan(km) else km,
                score=None,
            )
        )
    return LineRanking(
        lc.line.line_id,
        lc.line.sku,
        q,
        tuple(entries),
        eligible_count=n_elig,
        fenced_count=tuple((f, counts[c]) for c, f in enumerate(FENCE_ORDER) if counts[c]),
        listed_all=listed_all,
    )


def _ranked(
    lc: LineCandidates,
    rates: LineRates,
    mode: Mode,
    q: float,
    node_fixed: np.ndarray,
    top: int | None,
    chosen: Collection[str],
) -> list[RankEntry]:
    """The eligible entries of :func:`rank_line` from the line's rating arrays: the same
    numbers (``PairRating.terms`` of ``min(atp, qty)``) without a rating object per node;
    every node is ranked, entries are made for the listed ones only."""
    ids, atp = lc.eligible_ids, lc.eligible_atp
    n = len(ids)
    take = np.where(q < atp, q, atp)
    ship = rates.per_unit_shipping * take
    cost: np.ndarray | None = None
    if mode in (Mode.PREDICTIVE, Mode.COST):
        cost = ship + rates.fixed + node_fixed
        # candidates come in node-id order, so a stable sort breaks ties by node id
        order = np.argsort(cost, kind="stable")
    else:
        elig = lc.eligible()
        pos = {id(c): k for k, c in enumerate(elig)}
        order = np.array([pos[id(c)] for c in sort_candidates(mode, elig)], dtype=np.intp)
    listed = order if top is None else order[:top]
    below: list[int] = []
    if top is not None and chosen and n > top:
        ranks = np.empty(n, dtype=np.intp)
        ranks[order] = np.arange(n)
        below = sorted(
            int(ranks[k])
            for nid in chosen
            if (k := rates.index(nid)) is not None and ranks[k] >= top
        )
        if below:
            listed = np.concatenate([listed, order[below]])
    rank_of = [*range(1, len(listed) - len(below) + 1), *(r + 1 for r in below)]
    idx = listed.tolist()
    if cost is not None:
        scores: list[float | None] = cost[listed].tolist()
    else:
        elig = lc.eligible()
        scores = [mode_score(mode, elig[k]) for k in idx]
    ship_l = ship[listed].tolist()
    hand, stock, late = (
        rates.handling[listed].tolist(),
        rates.stockout_risk_cost[listed].tolist(),
        rates.late_cost[listed].tolist(),
    )
    p_s, p50, p90, p_l = (
        rates.p_stockout[listed].tolist(),
        rates.days_p50[listed].tolist(),
        rates.days_p90[listed].tolist(),
        rates.p_late[listed].tolist(),
    )
    nodes, at = lc.cols.nodes, lc.eligible_nodes[listed].tolist()
    dist = lc.distance[lc.eligible_pos[listed]].tolist()
    n_listed = len(idx)
    # column-wise, in RankEntry's field order (a positional call per entry: the listed
    # entries of every line are built here)
    return list(
        map(
            RankEntry,
            [ids[k] for k in idx],
            rank_of,
            repeat(True, n_listed),
            repeat(None, n_listed),
            repeat(None, n_listed),
            atp[listed].tolist(),
            [nodes[k].priority for k in at],
            [None if math.isnan(d) else d for d in dist],
            scores,
            ship_l,
            hand,
            stock,
            late,
            p_s,
            p50,
            p90,
            p_l,
        )
    )


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
    n = len(ids)
    # the state uses a few nodes, the unit has up to hundreds (each once): mark those few
    is_new = np.ones(n, dtype=bool)
    for nid in used:
        if nid in ids:
            is_new[ids.index(nid)] = False
    ok = np.fromiter(map(left.get, zip(ids, repeat(key)), repeat(0.0)), np.float64, n) >= q - EPS
    if st.max_ship is not None and len(used) + 1 > st.max_ship:
        ok &= ~is_new
    if 0 <= chosen < n:
        ok[chosen] = False
    if not ok.any():
        return None
    cost = np.asarray(opts.costs, dtype=np.float64)
    extra = np.fromiter(map(fixed.__getitem__, ids), np.float64, n)
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
