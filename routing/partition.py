"""Exact allocation by dynamic programming over subsets of lines, for ordinary orders.

When every option serves a unit whole from one node (no quantity splits, no SKU shared by
two units), a plan is a partition of the units into blocks, each served by one node. The
best node for every subset of units comes from the subsets each node serves in full (a
node stocking 3 of 12 lines' SKUs has 8 of the 4,096, built as array entries); the best
partition into at most ``max_shipments`` blocks is a DP over submasks, 3^(L-1) steps. With
numpy both passes run as array operations over every (subset, block) pair at once (12 lines
× 200 nodes in a few ms, where branch-and-bound on the same problem needs 10^5-10^6
states); without numpy the same DP runs in pure Python and gives the same answer, slower.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from routing.allocation import EPS, Options, Problem, Solution

_np: Any
try:  # numpy is optional: the pure-Python path gives the same answer, slower
    import numpy as _np
except ImportError:  # pragma: no cover - numpy ships with the project
    _np = None

MAX_LINES = 12
#: submask tie tolerance of the DP (same as the pure-Python loop's strict improvement)
_TIE = 1e-9


def solve_partition(p: Problem, max_lines: int = MAX_LINES) -> Solution | None:
    """Proven optimum, or ``None`` when the problem has options this method cannot express."""
    n_units = len(p.units)
    if n_units == 0 or n_units > max_lines or not p.fixed:
        return None
    nodes = sorted(p.fixed)
    col = {n: j for j, n in enumerate(nodes)}
    inf = math.inf
    cost = [[inf] * len(nodes) for _ in range(n_units)]
    pick = [[-1] * len(nodes) for _ in range(n_units)]
    pen = [inf] * n_units
    pen_pick = [-1] * n_units
    skus: set[str] = set()
    for u, opts in enumerate(p.units):
        mine: set[str] = set()
        start = 0
        if isinstance(opts, Options):  # one-node options as arrays: each node appears once
            row, at = cost[u], pick[u]
            for i, (nid, c) in enumerate(zip(opts.node_ids, opts.costs, strict=True)):
                j = col[nid]
                if c < row[j]:
                    row[j], at[j] = c, i
            if opts.node_ids:
                mine.add(opts.sku)
            start = len(opts.node_ids)
            opts = opts.rest
        for i, o in enumerate(opts, start):
            mine.update(k[1] for k, _ in o.use)
            if not o.parts:
                if o.cost < pen[u]:
                    pen[u], pen_pick[u] = o.cost, i
            elif len(o.nodes) == 1 and o.unmet <= EPS:
                j = col[o.nodes[0]]
                if o.cost < cost[u][j]:
                    cost[u][j], pick[u][j] = o.cost, i
            else:
                return None
        if mine & skus or pen_pick[u] < 0:
            return None
        skus |= mine
    size = 1 << n_units
    block, block_node = _blocks(cost, [p.fixed[n] for n in nodes], size)

    cap = p.max_shipments if p.max_shipments is not None and p.max_shipments < n_units else None
    if _np is not None and n_units > 3:
        prev, choice_layers, states = _dp_numpy(block, n_units, cap)
    else:
        prev, choice_layers, states = _dp_python(block, n_units, cap)
    best_total, best_unmet = _leave_unmet(prev, pen, n_units)
    if not math.isfinite(best_total):
        return None
    full = size - 1
    choice = [-1] * n_units
    for u in range(n_units):
        if best_unmet >> u & 1:
            choice[u] = pen_pick[u]
    mask, layer = full ^ best_unmet, len(choice_layers) - 1
    while mask:
        sub = choice_layers[layer][mask]
        if cap is not None and sub == 0:  # fewer blocks suffice: look one layer down
            layer -= 1
            continue
        j = block_node[sub]
        for u in range(n_units):
            if sub >> u & 1:
                choice[u] = pick[u][j]
        mask ^= sub
        if cap is not None:
            layer -= 1
    return Solution(choice=choice, cost=best_total, optimal=True, states=states, method="subset_dp")


def _dp_python(
    block: list[float], n_units: int, cap: int | None
) -> tuple[list[float], list[list[int]], int]:
    """g[mask]: best cost of serving exactly ``mask`` with <= k blocks (k = layer), and the
    block chosen last for every mask of every layer."""
    inf = math.inf
    size = 1 << n_units
    layers = cap if cap is not None else 1
    prev = [0.0] + [inf] * (size - 1)
    choice_layers: list[list[int]] = []
    states = 0
    for _ in range(layers):
        g = [0.0] + [inf] * (size - 1)
        arg = [0] * size
        for mask in range(1, size):
            low = mask & -mask
            rest = mask ^ low
            best, best_sub = (prev[mask], 0) if cap is not None else (inf, 0)
            s = rest
            while True:
                sub = s | low
                b = block[sub]
                if b < inf:
                    other = (g if cap is None else prev)[mask ^ sub]
                    v = b + other
                    if v < best - _TIE:
                        best, best_sub = v, sub
                states += 1
                if s == 0:
                    break
                s = (s - 1) & rest
            g[mask], arg[mask] = best, best_sub
        choice_layers.append(arg)
        prev = g
    return prev, choice_layers, states


def _leave_unmet(prev: list[float], pen: list[float], n_units: int) -> tuple[float, int]:
    """Best total over the sets of units left unserved (only when nothing else is feasible)."""
    size = 1 << n_units
    full = size - 1
    if _np is not None and n_units > 3:
        np = _np
        pen_a = np.zeros(size)
        for u in range(n_units - 1, -1, -1):  # same sums as the loop: lowest unit added last
            high = np.arange(0, size, 2 << u)
            pen_a[high | (1 << u)] = pen_a[high] + pen[u]
        v = pen_a + np.asarray(prev)[full ^ np.arange(size)]
        m = float(v.min())
        if not math.isfinite(m):
            return math.inf, 0
        first = int(np.argmax(v <= m + _TIE))
        return float(v[first]), first
    pen_of = [0.0] * size
    for mask in range(1, size):
        low = mask & -mask
        pen_of[mask] = pen_of[mask ^ low] + pen[low.bit_length() - 1]
    best_total, best_unmet = math.inf, 0
    for unmet in range(size):
        v = pen_of[unmet] + prev[full ^ unmet]
        if v < best_total - _TIE:
            best_total, best_unmet = v, unmet
    return best_total, best_unmet


@lru_cache(maxsize=MAX_LINES + 1)
def _pairs(n_units: int) -> tuple[Any, Any, Any, list[tuple[int, int]]]:
    """Every (mask, block) pair the DP looks at: ``sub`` holds the mask's lowest unit and lies
    within it. Sorted by the mask's size, then mask; returns ``sub``, ``rest = mask ^ sub``,
    the start of each mask's run and, per mask size, its range of runs."""
    np = _np
    mask = np.array([1], dtype=np.int64)
    sub = np.array([1], dtype=np.int64)
    for u in range(1, n_units):
        top = 1 << u
        mask = np.concatenate([mask, np.array([top]), mask | top, mask | top])
        sub = np.concatenate([sub, np.array([top]), sub, sub | top])
    size = 1 << n_units
    bits = np.zeros(size, dtype=np.int64)
    for u in range(n_units):
        bits[1 << u : 2 << u] = bits[: 1 << u] + 1
    order = np.lexsort((-sub, mask, bits[mask]))
    mask, sub = mask[order], sub[order]
    starts = np.flatnonzero(np.r_[True, mask[1:] != mask[:-1]])
    seg_bits = bits[mask[starts]]
    levels = []
    for k in range(1, n_units + 1):
        idx = np.flatnonzero(seg_bits == k)
        levels.append((int(idx[0]), int(idx[-1]) + 1))
    return sub, mask ^ sub, starts, levels


def _dp_numpy(
    block: list[float], n_units: int, cap: int | None
) -> tuple[list[float], list[list[int]], int]:
    """``_dp_python`` as array operations: every (mask, block) pair of a layer at once (of
    one mask size at once without a cap: a mask reads only smaller masks' final values).
    Ties keep the largest block, as the loop's strict-improvement scan does."""
    np = _np
    sub, rest, starts, levels = _pairs(n_units)
    size = 1 << n_units
    blk = np.asarray(block, dtype=float)
    b = blk[sub]
    ends = np.r_[starts[1:], len(sub)]
    masks = sub[starts] | rest[starts]

    def best_block(v: Any, s0: int, s1: int, base: Any) -> Any:
        """Per mask run in ``[s0, s1)``: its block of least ``v`` if it beats ``base``, else 0."""
        lo, hi = starts[s0], ends[s1 - 1]
        runs = starts[s0:s1] - lo
        m = np.minimum.reduceat(v, runs)
        near = v <= np.repeat(m, ends[s0:s1] - starts[s0:s1]) + _TIE
        chosen = np.maximum.reduceat(np.where(near, sub[lo:hi], 0), runs)
        return np.where(m < base - _TIE, chosen, 0)

    if cap is None:
        g = np.full(size, math.inf)
        g[0] = 0.0
        arg = np.zeros(size, dtype=np.int64)
        for s0, s1 in levels:
            lo, hi = starts[s0], ends[s1 - 1]
            chosen = best_block(b[lo:hi] + g[rest[lo:hi]], s0, s1, math.inf)
            mk = masks[s0:s1]
            arg[mk] = chosen
            g[mk] = np.where(chosen > 0, blk[chosen] + g[mk ^ chosen], math.inf)
        return g.tolist(), [arg.tolist()], len(sub)
    prev = np.full(size, math.inf)
    prev[0] = 0.0
    layers: list[list[int]] = []
    for _ in range(cap):
        base = prev[masks]
        chosen = best_block(b + prev[rest], 0, len(starts), base)
        arg = np.zeros(size, dtype=np.int64)
        arg[masks] = chosen
        g = prev.copy()
        g[masks] = np.where(chosen > 0, blk[chosen] + prev[masks ^ chosen], base)
        layers.append(arg.tolist())
        prev = g
    return prev.tolist(), layers, len(sub) * cap


def _blocks(
    cost: list[list[float]], fixed: list[float], size: int
) -> tuple[list[float], list[int]]:
    """Cheapest single node (fixed cost + line costs) for every subset of units."""
    if _np is not None and size * len(fixed) > 4096:  # numpy pays off beyond tiny tables
        np = _np
        c = np.asarray(cost, dtype=float)
        f = np.asarray(fixed, dtype=float)
        keep = _undominated(c, f)
        c, f = c[:, keep], f[keep]
        # Only the subsets a node serves in full have a finite row: a node stocking 3 of 12
        # lines has 8 of the 4,096, so the rows are built per (subset, node) entry. Each
        # entry's value is summed as the loop below sums it (fixed cost, then the units from
        # the highest to the lowest), and a subset's block is its least entry, the lowest
        # node on ties (what an argmin over the full table picks).
        mask = np.zeros(c.shape[1], dtype=np.int64)
        node = np.arange(c.shape[1])
        val = f.copy()
        for u in range(c.shape[0] - 1, -1, -1):
            cu = c[u, node]
            ok = np.isfinite(cu)
            mask = np.concatenate([mask, mask[ok] | (1 << u)])
            val = np.concatenate([val, val[ok] + cu[ok]])
            node = np.concatenate([node, node[ok]])
        order = np.lexsort((node, val, mask))
        mask, val, node = mask[order], val[order], node[order]
        first = np.r_[True, mask[1:] != mask[:-1]]
        vals = np.full(size, math.inf)
        best = np.zeros(size, dtype=np.int64)
        vals[mask[first]] = val[first]
        best[mask[first]] = node[first]
        vals[0] = math.inf
        return vals.tolist(), keep[best].tolist()
    rows: list[list[float]] = [list(fixed)] + [[] for _ in range(size - 1)]
    block = [math.inf] * size
    node = [0] * size
    for mask in range(1, size):
        low = mask & -mask
        base, add = rows[mask ^ low], cost[low.bit_length() - 1]
        row = [a + b for a, b in zip(base, add, strict=True)]
        rows[mask] = row
        m = min(row)
        block[mask], node[mask] = m, row.index(m)
    return block, node


def _undominated(c: Any, f: Any, per_unit: int = 8) -> Any:
    """Indices of the nodes that can be the cheapest node of some subset of units.

    Node ``j`` never is when a node ``k`` costs no more in the fixed cost and for every unit
    (it serves all of ``j``'s units): ``k`` wins every subset ``j`` could, on a tie too when
    ``k`` comes first (lower node id); a later ``k`` must be cheaper in every finite term.
    The dominating nodes looked for are each unit's few cheapest, which covers most of them
    at a fraction of the all-pairs cost. Exact either way: only dominated nodes leave.
    """
    np = _np
    n_nodes = c.shape[1]
    if n_nodes <= per_unit:
        return np.arange(n_nodes)
    alone = c + f  # cost of each unit served alone at each node
    top = np.argpartition(alone, per_unit - 1, axis=1)[:, :per_unit]
    by = np.unique(np.r_[top.ravel(), np.argmin(f)])
    ck, fk = c[:, by], f[by]  # (units, K), (K,)
    le = (fk[:, None] <= f[None, :]) & (ck[:, :, None] <= c[:, None, :]).all(axis=0)
    finite = np.isfinite(c)[:, None, :]
    lt = (fk[:, None] < f[None, :]) & ((ck[:, :, None] < c[:, None, :]) | ~finite).all(axis=0)
    first = by[:, None] < np.arange(n_nodes)[None, :]
    dominated = (le & (first | lt)).any(axis=0)
    return np.flatnonzero(~dominated)
