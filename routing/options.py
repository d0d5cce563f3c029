"""Turn fenced, rated candidates into the options the allocator chooses between.

A unit is one line, or every line of a ship-together group. Its options are: a single
node serving it whole; when the line may split, pairs (and a greedy fill up to
``max_parts_per_line``) among its cheapest nodes; when the SKU is short across the network,
partial parts with the rest unmet; and always "unmet", so every problem is feasible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from routing.allocation import EPS, UNMET_PENALTY, Option, Options, Part
from routing.fences import LineCandidates
from routing.policy import SearchLimits
from routing.ratings import LineRates, PairRating, RatingTable

Ratings = Mapping[tuple[int, str], PairRating]


def make_option(
    parts: Sequence[Part], unmet: float, lcs: dict[int, LineCandidates], ratings: Ratings
) -> Option:
    cost = UNMET_PENALTY * unmet
    use: dict[tuple[str, str], float] = {}
    for pt in parts:
        cost += ratings[(pt.line, pt.node_id)].cost(pt.qty)
        k = (pt.node_id, lcs[pt.line].line.sku.casefold())
        use[k] = use.get(k, 0.0) + pt.qty
    nodes = tuple(sorted({pt.node_id for pt in parts}))
    pts = tuple(parts)
    return Option(pts, cost, nodes, unmet, tuple(sorted(use.items())), Option.make_key(pts))


def _value_ok(qtys: Sequence[float], price: float, threshold: float) -> bool:
    """Every piece of a split line (served or left unmet) must be worth the threshold."""
    return threshold <= 0 or all(q * price >= threshold - EPS for q in qtys)


def _greedy_fill(
    i: int, q: float, top: Sequence[tuple[str, float]], max_parts: int
) -> tuple[list[Part], float]:
    parts: list[Part] = []
    rest = q
    for nid, atp in top:
        if rest <= EPS or len(parts) == max_parts:
            break
        take = min(atp, rest)
        if take > EPS:
            parts.append(Part(i, nid, take))
            rest -= take
    return parts, max(rest, 0.0)


def line_options(
    lc: LineCandidates,
    ratings: Ratings,
    node_fixed: np.ndarray,
    short: bool,
    shared_sku: bool,
    limits: SearchLimits,
) -> Sequence[Option]:
    """A line's options: ``Options`` (one-node options as arrays) when rated in arrays.
    ``node_fixed``: the shipment fixed cost of each of the line's eligible nodes."""
    i, line = lc.index, lc.line
    q, price, thr = line.qty, line.unit_price, lc.rules.split_value_threshold
    lcs = {i: lc}
    ids, atp = lc.eligible_ids, lc.eligible_atp
    seen: set[tuple[tuple[str, float, int], ...]] = set()
    out: list[Option] = []

    def add(parts: list[Part], unmet: float) -> None:
        o = make_option(parts, unmet, lcs, ratings)
        if o.key not in seen:
            seen.add(o.key)
            out.append(o)

    singles = np.flatnonzero(atp >= q - EPS)
    rates = ratings.lines.get(i) if isinstance(ratings, RatingTable) else None
    one_node: tuple[list[str], list[float]] | None = None
    if rates is not None and len(rates.node_ids) == len(ids):
        one_node = _singles(q, singles, ids, rates)
    else:
        for k in singles.tolist():
            add([Part(i, ids[k], q)], 0.0)

    splits = lc.splittable and (len(singles) < 2 or shared_sku)
    if one_node is not None and (splits or short):  # only then are other options added
        seen.update(((nid, -q, i),) for nid in one_node[0])
    top: list[tuple[str, float]] = []
    if len(ids) and (splits or short):
        take = np.where(q < atp, q, atp)
        if rates is not None and len(rates.node_ids) == len(ids):
            cost = rates.per_unit_shipping * take + rates.fixed
        else:
            cost = np.array(
                [ratings[(i, n)].cost(t) for n, t in zip(ids, take.tolist(), strict=True)]
            )
        # eligible nodes come in node-id order: a stable sort breaks ties by node id
        best = np.argsort((cost + node_fixed) / take, kind="stable")[: limits.split_candidates]
        top = [(ids[k], a) for k, a in zip(best.tolist(), atp[best].tolist(), strict=True)]
    if splits:
        for a_id, a_atp in top:
            x = min(a_atp, q)
            rest = q - x
            if rest <= EPS:
                continue
            for b_id, b_atp in top:
                if b_id == a_id or b_atp < rest - EPS or not _value_ok((x, rest), price, thr):
                    continue
                add([Part(i, a_id, x), Part(i, b_id, rest)], 0.0)
        if limits.max_parts_per_line > 2:
            parts, rest = _greedy_fill(i, q, top, limits.max_parts_per_line)
            if rest <= EPS and len(parts) > 2 and _value_ok([p.qty for p in parts], price, thr):
                add(parts, 0.0)
    if short:
        for k in np.flatnonzero((atp > EPS) & (atp < q - EPS)).tolist():
            a = float(atp[k])
            if _value_ok((a, q - a), price, thr):
                add([Part(i, ids[k], a)], q - a)
        if lc.splittable:
            parts, rest = _greedy_fill(i, q, top, limits.max_parts_per_line)
            if parts and rest > EPS and _value_ok([*(p.qty for p in parts), rest], price, thr):
                add(parts, rest)
    add([], q)
    if one_node is None:
        return out
    return Options(i, q, line.sku.casefold(), one_node[0], one_node[1], out)


def _singles(
    q: float, singles: np.ndarray, ids: list[str], rates: LineRates
) -> tuple[list[str], list[float]]:
    """Node ids and ``make_option`` costs of a line's one-node options, from its ratings
    (``rates`` holds the line's eligible nodes, in their order)."""
    return [ids[k] for k in singles.tolist()], (
        0.0 + (rates.per_unit_shipping[singles] * q + rates.fixed[singles])
    ).tolist()


def together_options(unit: Sequence[LineCandidates], ratings: Ratings) -> list[Option]:
    """Ship-together lines: one node serves all of them in full, or none is served."""
    lcs = {lc.index: lc for lc in unit}
    atp_by_node: list[dict[str, float]] = [
        dict(zip(lc.eligible_ids, lc.eligible_atp.tolist(), strict=True)) for lc in unit
    ]
    common = set(atp_by_node[0]).intersection(*atp_by_node[1:])
    out: list[Option] = []
    for nid in sorted(common):
        need: dict[str, float] = {}
        ok = True
        for lc, atps in zip(unit, atp_by_node, strict=True):
            k = lc.line.sku.casefold()
            need[k] = need.get(k, 0.0) + lc.line.qty
            if atps[nid] < need[k] - EPS:
                ok = False
        if ok:
            out.append(
                make_option([Part(lc.index, nid, lc.line.qty) for lc in unit], 0.0, lcs, ratings)
            )
    out.append(make_option([], sum(lc.line.qty for lc in unit), lcs, ratings))
    return out
