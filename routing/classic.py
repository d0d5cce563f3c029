"""Classic modes, with the semantics of the engines users migrate from.

* ``priority``: eligible nodes by ascending priority, greedy fill (Magento MSI's
  PriorityBasedAlgorithm + GetDefaultSortedSourcesResult).
* ``distance``: nearest first by great-circle distance, ties in priority order, nodes with
  unknown distance after them in priority order (MSI's DistanceBasedAlgorithm).
* ``high_stock``: most available first, sorted once per order (Saleor's
  ``AllocationStrategy.PRIORITIZE_HIGH_STOCK``).

Fences still apply (a disabled, closed or out-of-stock node is never used), so with the
default policy these reproduce the published behaviour; policy limits (never-split, max
shipments, value thresholds) are honoured on top.
"""

from __future__ import annotations

from collections.abc import Sequence

from routing.allocation import EPS
from routing.domain import Mode
from routing.fences import Candidate, LineCandidates


def sort_candidates(mode: Mode, cands: Sequence[Candidate]) -> list[Candidate]:
    """The mode's node order for one line (eligible candidates only)."""
    if mode is Mode.PRIORITY:
        return sorted(cands, key=lambda c: (c.node.priority, c.node.node_id))
    if mode is Mode.DISTANCE:
        known = [c for c in cands if c.distance_km is not None]
        unknown = [c for c in cands if c.distance_km is None]
        known.sort(key=lambda c: (c.distance_km, c.node.priority, c.node.node_id))
        unknown.sort(key=lambda c: (c.node.priority, c.node.node_id))
        return known + unknown
    if mode is Mode.HIGH_STOCK:
        return sorted(cands, key=lambda c: (-c.atp, c.node.priority, c.node.node_id))
    raise ValueError(f"{mode.value!r} is not a classic mode")


def mode_score(mode: Mode, c: Candidate) -> float | None:
    """The number the mode sorts on, shown in the ranking."""
    if mode is Mode.PRIORITY:
        return float(c.node.priority)
    if mode is Mode.DISTANCE:
        return c.distance_km
    return c.atp


def fill(
    mode: Mode,
    units: Sequence[Sequence[LineCandidates]],
    stock: dict[tuple[str, str], float],
    max_shipments: int | None,
) -> dict[int, list[tuple[str, float]]]:
    """Greedy fill in the mode's order; returns line index -> [(node_id, qty)]."""
    left = dict(stock)
    used: set[str] = set()
    out: dict[int, list[tuple[str, float]]] = {}

    def may_open(node_id: str) -> bool:
        return node_id in used or max_shipments is None or len(used) < max_shipments

    for unit in units:
        if len(unit) > 1:  # ship-together lines: first node in order that serves them all
            first = unit[0]
            ids_ok = set.intersection(*({c.node.node_id for c in lc.eligible()} for lc in unit))
            for c in sort_candidates(mode, first.eligible()):
                nid = c.node.node_id
                if nid not in ids_ok or not may_open(nid):
                    continue
                need: dict[tuple[str, str], float] = {}
                for lc in unit:
                    k = (nid, lc.line.sku.casefold())
                    need[k] = need.get(k, 0.0) + lc.line.qty
                if all(left.get(k, 0.0) >= q - EPS for k, q in need.items()):
                    for k, q in need.items():
                        left[k] -= q
                    for lc in unit:
                        out[lc.index] = [(nid, lc.line.qty)]
                    used.add(nid)
                    break
            continue
        lc = unit[0]
        line = lc.line
        key = line.sku.casefold()
        threshold = lc.rules.split_value_threshold
        remaining = line.qty
        parts: list[tuple[str, float]] = []
        for c in sort_candidates(mode, lc.eligible()):
            if remaining <= EPS:
                break
            nid = c.node.node_id
            avail = left.get((nid, key), 0.0)
            if avail <= EPS or not may_open(nid):
                continue
            if not lc.splittable and avail < remaining - EPS:
                continue
            take = min(avail, remaining)
            splits = take < remaining - EPS
            if (
                splits
                and threshold > 0
                and min(take, remaining - take) * line.unit_price < threshold
            ):
                continue
            parts.append((nid, take))
            left[(nid, key)] = avail - take
            used.add(nid)
            remaining -= take
        out[lc.index] = parts
    return out
