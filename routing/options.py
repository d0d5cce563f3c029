"""Turn fenced, rated candidates into the options the allocator chooses between.

A unit is one line, or every line of a ship-together group. Its options are: a single
node serving it whole; when the line may split, pairs (and a greedy fill up to
``max_parts_per_line``) among its cheapest nodes; when the SKU is short across the network,
partial parts with the rest unmet; and always "unmet", so every problem is feasible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from routing.allocation import EPS, UNMET_PENALTY, Option, Options, Part
from routing.fences import Candidate, LineCandidates
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
    i: int, q: float, top: Sequence[Candidate], max_parts: int
) -> tuple[list[Part], float]:
    parts: list[Part] = []
    rest = q
    for c in top:
        if rest <= EPS or len(parts) == max_parts:
            break
        take = min(c.atp, rest)
        if take > EPS:
            parts.append(Part(i, c.node.node_id, take))
            rest -= take
    return parts, max(rest, 0.0)


def line_options(
    lc: LineCandidates,
    ratings: Ratings,
    fixed: dict[str, float],
    short: bool,
    shared_sku: bool,
    limits: SearchLimits,
) -> Sequence[Option]:
    """A line's options: ``Options`` (one-node options as arrays) when rated in arrays."""
    i, line = lc.index, lc.line
    q, price, thr = line.qty, line.unit_price, lc.rules.split_value_threshold
    lcs = {i: lc}
    elig = lc.eligible()
    seen: set[tuple[tuple[str, float, int], ...]] = set()
    out: list[Option] = []

    def add(parts: list[Part], unmet: float) -> None:
        o = make_option(parts, unmet, lcs, ratings)
        if o.key not in seen:
            seen.add(o.key)
            out.append(o)

    singles = [c for c in elig if c.atp >= q - EPS]
    rates = ratings.lines.get(i) if isinstance(ratings, RatingTable) else None
    one_node: tuple[list[str], list[float]] | None = None
    if rates is not None and len(rates.node_ids) == len(elig):
        one_node = _singles(q, singles, rates)
    else:
        for c in singles:
            add([Part(i, c.node.node_id, q)], 0.0)

    def unit_cost(c: Candidate) -> tuple[float, str]:
        take = min(c.atp, q)
        nid = c.node.node_id
        return ((ratings[(i, nid)].cost(take) + fixed[nid]) / take, nid)

    splits = lc.splittable and (len(singles) < 2 or shared_sku)
    if one_node is not None and (splits or short):  # only then are other options added
        seen.update(((nid, -q, i),) for nid in one_node[0])
    top = (
        sorted(elig, key=unit_cost)[: limits.split_candidates] if elig and (splits or short) else []
    )
    if splits:
        for a in top:
            x = min(a.atp, q)
            rest = q - x
            if rest <= EPS:
                continue
            for b in top:
                if b is a or b.atp < rest - EPS or not _value_ok((x, rest), price, thr):
                    continue
                add([Part(i, a.node.node_id, x), Part(i, b.node.node_id, rest)], 0.0)
        if limits.max_parts_per_line > 2:
            parts, rest = _greedy_fill(i, q, top, limits.max_parts_per_line)
            if rest <= EPS and len(parts) > 2 and _value_ok([p.qty for p in parts], price, thr):
                add(parts, 0.0)
    if short:
        for c in elig:
            if EPS < c.atp < q - EPS and _value_ok((c.atp, q - c.atp), price, thr):
                add([Part(i, c.node.node_id, c.atp)], q - c.atp)
        if lc.splittable:
            parts, rest = _greedy_fill(i, q, top, limits.max_parts_per_line)
            if parts and rest > EPS and _value_ok([*(p.qty for p in parts), rest], price, thr):
                add(parts, rest)
    add([], q)
    if one_node is None:
        return out
    return Options(i, q, line.sku.casefold(), one_node[0], one_node[1], out)


def _singles(
    q: float, singles: Sequence[Candidate], rates: LineRates
) -> tuple[list[str], list[float]]:
    """Node ids and ``make_option`` costs of a line's one-node options, from its ratings."""
    pos = rates.pos
    ids = [c.node.node_id for c in singles]
    idx = [pos[n] for n in ids]
    return ids, (0.0 + (rates.per_unit_shipping[idx] * q + rates.fixed[idx])).tolist()


def together_options(unit: Sequence[LineCandidates], ratings: Ratings) -> list[Option]:
    """Ship-together lines: one node serves all of them in full, or none is served."""
    lcs = {lc.index: lc for lc in unit}
    atp_by_node: list[dict[str, float]] = [
        {c.node.node_id: c.atp for c in lc.eligible()} for lc in unit
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
