"""``route``: fences -> ratings -> allocation -> explanation, for one order.

Pure and deterministic: the clock comes in as ``now``; ties break by node id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from itertools import repeat
from typing import NamedTuple

import numpy as np

from routing import classic
from routing.allocation import EPS, Option, Problem, Solution, solve
from routing.domain import MODES, Mode, Network, Order, Prediction, PredictionArrays
from routing.errors import InvalidOrder, PredictionsRequired, UnknownMode
from routing.explain import explain_optimised, rank_line
from routing.fences import LineCandidates, evaluate
from routing.options import line_options, together_options
from routing.partition import solve_partition
from routing.plan import Allocation, Explanation, Plan, Shipment, Unallocated
from routing.policy import GroupRules, Policy
from routing.ratings import (
    LineRates,
    RatingTable,
    congestion_array,
    cutoff_wait_days,
    queue_days_array,
    rate_line,
    shipment_costs,
)


def _units(lcs: Sequence[LineCandidates]) -> list[list[LineCandidates]]:
    """Lines of a ship-together group form one unit; every other line is its own unit."""
    groups: dict[str, list[LineCandidates]] = {}
    units: list[list[LineCandidates]] = []
    for lc in lcs:
        g = lc.line.product_group
        if lc.rules.ship_together and g is not None:
            if g not in groups:
                groups[g] = []
                units.append(groups[g])
            groups[g].append(lc)
        else:
            units.append([lc])
    return units


Cols = tuple[np.ndarray, np.ndarray, np.ndarray]


def _zeros(n: int) -> Cols:
    z = np.zeros(n)
    return z, z, z


def _line_predictions(
    predictions: Mapping[tuple[str, str], Prediction], line_id: str, ids: list[str]
) -> tuple[np.ndarray, Cols]:
    """Which of a line's eligible nodes ``ids`` have a prediction, and the prediction
    columns (p_stockout, days_p50, days_p90; 0 where there is none). Arrays pass through
    when they hold exactly these nodes; a plain mapping is read pair by pair."""
    n = len(ids)
    if isinstance(predictions, PredictionArrays):
        lp = predictions.lines.get(line_id)
        if lp is None or not lp.node_ids:
            return np.zeros(n, dtype=bool), _zeros(n)
        if lp.node_ids == ids:
            return np.ones(n, dtype=bool), (lp.p_stockout, lp.days_p50, lp.days_p90)
        idx = np.array([lp.pos.get(nid, -1) for nid in ids], dtype=np.intp)
        has = idx >= 0
        at = np.where(has, idx, 0)
        return has, (
            np.where(has, lp.p_stockout[at], 0.0),
            np.where(has, lp.days_p50[at], 0.0),
            np.where(has, lp.days_p90[at], 0.0),
        )
    got = [predictions.get((line_id, nid)) for nid in ids]
    has = np.array([pr is not None for pr in got], dtype=bool)
    return has, (
        np.array([0.0 if pr is None else pr.p_stockout for pr in got], dtype=np.float64),
        np.array([0.0 if pr is None else pr.days_p50 for pr in got], dtype=np.float64),
        np.array([0.0 if pr is None else pr.days_p90 for pr in got], dtype=np.float64),
    )


class _ToRate(NamedTuple):
    """One line's eligible pairs waiting to be rated with the other lines of its rules."""

    lc: LineCandidates
    promise: float
    distance: np.ndarray
    predicted: np.ndarray | None
    cols: Cols
    wait: np.ndarray


def _rate_batch(
    rules: GroupRules, weight: float | np.ndarray, promise: float | np.ndarray, batch: list[_ToRate]
) -> dict[str, np.ndarray]:
    """``rate_line`` of the lines of ``batch`` (all with ``rules``) in one pass."""
    one = len(batch) == 1

    def cat(arrays: list[np.ndarray]) -> np.ndarray:
        return arrays[0] if one else np.concatenate(arrays)

    predicted = None
    if any(b.predicted is not None for b in batch):
        predicted = cat(
            [np.zeros(len(b.distance), bool) if b.predicted is None else b.predicted for b in batch]
        )
    at = cat([b.lc.eligible_nodes for b in batch])
    nodes = batch[0].lc.cols
    return rate_line(
        weight_kg=weight,
        handling_cost=nodes.handling[at],
        distance_km=cat([b.distance for b in batch]),
        predicted=predicted,
        p_stockout=cat([b.cols[0] for b in batch]),
        days_p50=cat([b.cols[1] for b in batch]),
        days_p90=cat([b.cols[2] for b in batch]),
        rules=rules,
        promise_days=promise,
        queue=cat([b.wait for b in batch]) + queue_days_array(nodes.load[at], rules),
    )


def _rate(
    order: Order,
    lcs: Sequence[LineCandidates],
    mode: Mode,
    policy: Policy,
    predictions: Mapping[tuple[str, str], Prediction] | None,
    now: datetime,
) -> RatingTable:
    """Every eligible pair's rating, one array pass per line (``rate_pair`` bit for bit)."""
    missing: list[tuple[str, str]] = []
    #: per node (column index): days waiting for the next pick-up
    waits: dict[int, float] = {}
    buffer = policy.channel(order.channel).promise_buffer_days
    #: lines with the same rules are rated in one pass
    batches: dict[GroupRules, list[_ToRate]] = {}
    for lc in lcs:
        line = lc.line
        promise = order.promise_days if order.promise_days is not None else lc.rules.promise_days
        promise = max(promise - buffer, 0.5) if buffer else promise
        ids = lc.eligible_ids
        at = lc.eligible_nodes
        predicted = None
        cols = _zeros(len(ids))
        if predictions is not None and mode is not Mode.COST:
            predicted, cols = _line_predictions(predictions, line.line_id, ids)
            if mode is Mode.PREDICTIVE and not predicted.all():
                missing += [(line.line_id, ids[k]) for k in np.flatnonzero(~predicted).tolist()]
                continue
        nodes = lc.cols
        wait = np.zeros(len(ids))
        for j in np.flatnonzero(nodes.has_calendar[at]).tolist():
            k = int(at[j])
            w = waits.get(k)
            if w is None:
                w = waits[k] = cutoff_wait_days(nodes.nodes[k], now)
            wait[j] = w
        batches.setdefault(lc.rules, []).append(
            _ToRate(lc, promise, lc.distance[lc.eligible_pos], predicted, cols, wait)
        )
    rated: dict[int, dict[str, np.ndarray]] = {}
    for rules, batch in batches.items():
        if len(batch) == 1:
            b = batch[0]
            rated[b.lc.index] = _rate_batch(rules, b.lc.line.weight_kg, b.promise, batch)
            continue
        sizes = [len(b.lc.eligible_ids) for b in batch]
        columns = _rate_batch(
            rules,
            np.repeat([b.lc.line.weight_kg for b in batch], sizes).astype(np.float64),
            np.repeat([b.promise for b in batch], sizes).astype(np.float64),
            batch,
        )
        ends = np.cumsum(sizes).tolist()
        for b, start, end in zip(batch, [0, *ends], ends, strict=False):
            rated[b.lc.index] = {k: v[start:end] for k, v in columns.items()}
    lines: dict[int, LineRates] = {}
    for b in (b for batch in batches.values() for b in batch):
        lines[b.lc.index] = LineRates(b.lc.eligible_ids, b.distance, rated[b.lc.index])
    lines = {lc.index: lines[lc.index] for lc in lcs if lc.index in lines}
    if missing:
        raise PredictionsRequired(
            f"predictive mode needs a prediction for every candidate pair; {len(missing)} missing, "
            f"e.g. {missing[:3]}: score the pairs from routing.candidate_pairs() with the same policy"
        )
    return RatingTable(lines)


class _Books(NamedTuple):
    #: per node its shipment's fixed cost (priced with the first line it may serve)
    fixed: dict[str, float]
    #: per line index, ``fixed`` of its eligible nodes in their order (an array gather
    #: instead of a dict lookup per node for the rankings and options)
    line_fixed: dict[int, np.ndarray]
    #: per (node, SKU) the ATP the allocator may use (a SKU on two lines: the lesser)
    stock: dict[tuple[str, str], float]
    supply: dict[str, float]
    demand: dict[str, float]


def _node_books(
    lcs: Sequence[LineCandidates], pol: Policy, per_ship: float, congestion: float
) -> _Books:
    """Per node its shipment's fixed cost, per (node, SKU) the ATP the allocator may use,
    and per SKU its supply and demand (``_Books``)."""
    fixed: dict[str, float] = {}
    line_fixed: dict[int, np.ndarray] = {}
    stock: dict[tuple[str, str], float] = {}
    demand: dict[str, float] = {}
    supply: dict[str, float] = {}
    seen: np.ndarray | None = None
    fixed_at = np.empty(0)
    for lc in lcs:
        key = lc.line.sku.casefold()
        demand[key] = demand.get(key, 0.0) + lc.line.qty
        ids, at = lc.eligible_ids, lc.eligible_nodes
        if seen is None:
            seen = np.zeros(len(lc.cols.ids), dtype=bool)
            fixed_at = np.empty(len(lc.cols.ids))
        new = np.flatnonzero(~seen[at])
        if len(new):
            nodes = at[new]
            seen[nodes] = True
            f = shipment_costs(lc.distance[lc.eligible_pos[new]], lc.rules, per_ship)
            if congestion:
                f = f + congestion_array(lc.cols.load[nodes], congestion)
            if pol.capacity == "penalise":
                f = np.where(lc.cols.at_capacity[nodes], f + pol.capacity_penalty, f)
            fixed_at[nodes] = f
            fixed.update(zip([ids[j] for j in new.tolist()], f.tolist(), strict=True))
        line_fixed[lc.index] = fixed_at[at]
        atp = lc.eligible_atp.tolist()
        if key not in supply:
            stock.update(zip(zip(ids, repeat(key)), atp, strict=True))
            supply[key] = sum(atp, 0.0)
            continue
        for nid, a in zip(ids, atp, strict=True):
            pair = (nid, key)
            if pair not in stock:
                supply[key] += a
                stock[pair] = a
            elif a < stock[pair]:
                supply[key] -= stock[pair] - a
                stock[pair] = a
    return _Books(fixed, line_fixed, stock, supply, demand)


def route(
    order: Order,
    network: Network,
    *,
    mode: Mode | str = Mode.PREDICTIVE,
    policy: Policy | None = None,
    predictions: Mapping[tuple[str, str], Prediction] | None = None,
    now: datetime,
    explain: bool = True,
    candidates: Sequence[LineCandidates] | None = None,
    ranking: int | None = None,
) -> Plan:
    """Decide which nodes ship which lines. See docs/formats.md for the plan's fields.

    ``explain=False`` leaves out the per-line ranking of every candidate and the runner-up
    comparison (the plan's summary stays): the same decision, for callers that only act on
    the allocations (the backtest plays tens of thousands of orders per policy).
    ``candidates``: ``fences.evaluate`` of this order, network, policy and time, when the
    caller built them already to score the pairs (they are not changed here).
    ``ranking``: how many candidates each line's ranking lists (``explain.rank_line``): the
    best ``ranking`` eligible nodes, each node the plan uses for the line and the
    ``ranking`` nearest fenced ones; ``None`` lists every candidate. Every candidate is
    ranked either way; only the listed ones are built into the plan."""
    if ranking is not None and ranking < 0:
        raise InvalidOrder(
            f"ranking must be at least 0 (or None for every candidate), not {ranking}"
        )
    if mode not in MODES:
        raise UnknownMode(f"mode {mode!r} is not one of {', '.join(MODES)}")
    mode = Mode(mode)
    if mode is Mode.PREDICTIVE and predictions is None:
        raise PredictionsRequired(
            "mode 'predictive' needs predictions for the pairs from candidate_pairs(); "
            "pass predictions=... or use mode 'cost' (same ratings without the models)"
        )
    pol = policy or Policy.default()
    lcs = list(candidates) if candidates is not None else evaluate(order, network, pol, now)
    per_ship = max((lc.rules.per_shipment_cost for lc in lcs), default=0.0)
    congestion = max((lc.rules.congestion_cost for lc in lcs), default=0.0)
    caps = [lc.rules.max_shipments for lc in lcs if lc.rules.max_shipments is not None]
    max_ship = order.shipment_cap(
        min(caps) if caps else pol.max_shipments, pol.channel(order.channel).max_shipments
    )
    ratings = _rate(order, lcs, mode, pol, predictions, now)

    fixed, line_fixed, stock, supply, demand = _node_books(lcs, pol, per_ship, congestion)

    units = _units(lcs)
    parts_by_line: dict[int, list[tuple[str, float]]] = {lc.index: [] for lc in lcs}
    sol: Solution | None = None
    problem: Problem | None = None
    if mode in (Mode.PREDICTIVE, Mode.COST):
        sku_count: dict[str, int] = {}
        for lc in lcs:
            k = lc.line.sku.casefold()
            sku_count[k] = sku_count.get(k, 0) + 1
        options: list[Sequence[Option]] = []
        for unit in units:
            if len(unit) > 1:
                options.append(together_options(unit, ratings))
            else:
                lc = unit[0]
                k = lc.line.sku.casefold()
                short = supply.get(k, 0.0) < demand[k] - EPS
                options.append(
                    line_options(
                        lc, ratings, line_fixed[lc.index], short, sku_count[k] > 1, pol.search
                    )
                )
        problem = Problem(options, fixed, stock, max_ship)
        exact = len(order.lines) <= pol.search.exact_max_lines
        budget = pol.search.max_states if exact else pol.search.bounded_states
        sol = solve_partition(problem) if exact else None
        if sol is None:
            # branch-and-bound indexes options in its inner loop: plain lists
            problem.units = [list(opts) for opts in problem.units]
            sol = solve(problem, max_states=budget, local_rounds=pol.search.local_search_rounds)
        for u, i in enumerate(sol.choice):
            for pt in options[u][i].parts:
                parts_by_line[pt.line].append((pt.node_id, pt.qty))
    else:
        parts_by_line.update(classic.fill(mode, units, stock, max_ship))

    allocs: list[Allocation] = []
    missing: list[Unallocated] = []
    for lc in lcs:
        line = lc.line
        served = 0.0
        for nid, qty in sorted(parts_by_line[lc.index], key=lambda t: t[0]):
            if qty <= EPS:
                continue
            served += qty
            allocs.append(
                Allocation(line.line_id, line.sku, nid, qty, ratings[(lc.index, nid)].terms(qty))
            )
        if line.qty - served > EPS:
            missing.append(Unallocated(line.line_id, line.sku, line.qty - served))

    shippable = not missing
    partial_ok = order.partial_ok(pol.allow_partial)
    actionable = shippable or partial_ok
    final = tuple(allocs) if actionable else ()
    by_node: dict[str, list[str]] = {}
    for a in final:
        ids = by_node.setdefault(a.node_id, [])
        if a.line_id not in ids:
            ids.append(a.line_id)
    shipments = tuple(Shipment(n, tuple(ids), fixed[n]) for n, ids in sorted(by_node.items()))
    total = sum(a.total for a in final) + sum(s.fixed_cost for s in shipments)

    used: dict[str, set[str]] = {}
    for a in allocs:
        used.setdefault(a.line_id, set()).add(a.node_id)
    ranked = (
        tuple(
            rank_line(
                lc, mode, ratings, line_fixed[lc.index], ranking, used.get(lc.line.line_id, ())
            )
            for lc in lcs
        )
        if explain
        else ()
    )
    summary = _summary(mode, final, shipments, total, missing, partial_ok)
    if order.preferences():
        summary += "; the order asks for " + ", ".join(order.preferences())
    if not explain:
        explanation = Explanation(summary=summary, chosen_total=total)
    elif problem is not None and sol is not None and actionable and final:
        explanation = explain_optimised(problem, sol, lcs, ratings, total, summary)
    else:
        explanation = _classic_explanation(mode, summary, total)
    return Plan(
        order_id=order.order_id,
        mode=mode,
        shippable=shippable,
        partial_allowed=partial_ok,
        allocations=final,
        unallocated=tuple(missing),
        best_effort=() if actionable else tuple(allocs),
        shipments_detail=shipments,
        ranking=ranked,
        explanation=explanation,
        total_cost=total,
        optimal=sol.optimal if sol is not None else True,
        method=("exact" if sol.optimal else "bounded") if sol is not None else f"classic:{mode}",
        search_states=sol.states if sol is not None else 0,
        policy_version=pol.version,
    )


def _summary(
    mode: Mode,
    allocs: Sequence[Allocation],
    shipments: Sequence[Shipment],
    total: float,
    missing: Sequence[Unallocated],
    partial_ok: bool,
) -> str:
    short = "; ".join(f"line {u.line_id} ({u.sku}) short by {u.qty:g}" for u in missing)
    if missing and not partial_ok:
        return f"not shippable and partial fulfilment is not allowed: {short}"
    nodes = ", ".join(s.node_id for s in shipments) or "no node"
    text = f"{mode}: {len(shipments)} shipment(s) from {nodes}, expected cost {total:.2f}"
    return text + (f"; partial: {short}" if missing else "")


def _classic_explanation(mode: Mode, summary: str, total: float) -> Explanation:
    rule = {
        Mode.PRIORITY: "nodes taken in ascending priority",
        Mode.DISTANCE: "nearest node first, unknown distances last in priority order",
        Mode.HIGH_STOCK: "node with the most available first",
        Mode.PREDICTIVE: "lowest expected cost",
        Mode.COST: "lowest expected cost without models",
    }[mode]
    return Explanation(summary=f"{summary} ({rule})", chosen_total=total)


def reroute_order(
    order: Order,
    *,
    exclude: frozenset[str],
    shipped_line_ids: frozenset[str] = frozenset(),
    shipped_nodes: frozenset[str] = frozenset(),
) -> Order | None:
    """The order to route again after a rejection or an address change: the unshipped lines,
    the rejecting nodes excluded, and only the shipment budget the shipped parcels left.

    ``None`` when nothing may be routed: every line shipped, a ship-complete order already
    (partly) shipped, or ``max_shipments`` used up by the parcels already sent.
    """
    lines = tuple(ln for ln in order.lines if ln.line_id not in shipped_line_ids)
    if not lines or (order.ship_complete and shipped_nodes):
        return None
    cap = order.max_shipments
    if cap is not None and shipped_nodes:
        cap -= len(shipped_nodes)
        if cap < 1:
            return None
    return replace(
        order, lines=lines, excluded_nodes=order.excluded_nodes | exclude, max_shipments=cap
    )
