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
    parsed = _parse(p)
    if parsed is None:
        return None
    rows, pen, pen_pick = parsed
    cap = p.max_shipments if p.max_shipments is not None and p.max_shipments < n_units else None
    if sum(len(ids) for ids, _, _ in rows) <= SPARSE_OPTIONS:
        at = [_cheapest(*row) for row in rows]
        sparse = _solve_sparse(at, pen, pen_pick, p.fixed, cap)
        if sparse is not None:
            return sparse
    return _solve_dense(rows, pen, pen_pick, p.fixed, cap)


#: per unit, its one-node options as parallel lists: node ids, costs, option indices
Rows = list[tuple[list[str], list[float], list[int]]]


def _parse(p: Problem) -> tuple[Rows, list[float], list[int]] | None:
    """Per unit: its one-node options and its cheapest unmet option (cost, index); ``None``
    when an option splits a unit or two units share a SKU."""
    rows: Rows = []
    pen: list[float] = []
    pen_pick: list[int] = []
    skus: set[str] = set()
    for opts in p.units:
        unit_skus: set[str] = set()
        unmet, unmet_at = math.inf, -1
        ids: list[str] = []
        costs: list[float] = []
        idx: list[int] = []
        start = 0
        if isinstance(opts, Options):  # one-node options as arrays
            ids, costs = list(opts.node_ids), list(opts.costs)
            idx = list(range(len(ids)))
            if ids:
                unit_skus.add(opts.sku)
            start = len(ids)
            opts = opts.rest
        for i, o in enumerate(opts, start):
            unit_skus.update(k[1] for k, _ in o.use)
            if not o.parts:
                if o.cost < unmet:
                    unmet, unmet_at = o.cost, i
            elif len(o.nodes) == 1 and o.unmet <= EPS:
                ids.append(o.nodes[0])
                costs.append(o.cost)
                idx.append(i)
            else:
                return None
        if unit_skus & skus or unmet_at < 0:
            return None
        skus |= unit_skus
        rows.append((ids, costs, idx))
        pen.append(unmet)
        pen_pick.append(unmet_at)
    return rows, pen, pen_pick


def _cheapest(ids: list[str], costs: list[float], idx: list[int]) -> dict[str, tuple[float, int]]:
    """Each node's cheapest option (cost, index), the first on ties."""
    mine = dict(zip(ids, zip(costs, idx, strict=True), strict=True))
    if len(mine) < len(ids):  # a node twice: the dict kept the last
        mine = {}
        for nid, c, i in zip(ids, costs, idx, strict=True):
            had = mine.get(nid)
            if had is None or c < had[0]:
                mine[nid] = (c, i)
    return mine


def _solve_dense(
    rows: Rows, pen: list[float], pen_pick: list[int], fixed: dict[str, float], cap: int | None
) -> Solution | None:
    """The DP over every (mask, block) pair, the blocks built from a unit × node cost matrix."""
    n_units = len(rows)
    nodes = sorted(fixed)
    col = {n: j for j, n in enumerate(nodes)}
    cost: Any
    pick: Any
    if _np is not None:  # rows filled as arrays: 12 lines × 1,000 nodes is 12,000 entries
        np = _np
        cost = np.full((n_units, len(nodes)), math.inf)
        pick = np.full((n_units, len(nodes)), -1, dtype=np.int64)
        for u, (ids, costs, idx) in enumerate(rows):
            js = [col[nid] for nid in ids]
            if len(set(js)) < len(js):  # a node twice: its cheapest, the first on ties
                mine = _cheapest(ids, costs, idx)
                js = [col[nid] for nid in mine]
                costs, idx = [c for c, _ in mine.values()], [i for _, i in mine.values()]
            cost[u, js] = costs
            pick[u, js] = idx
    else:
        cost = [[math.inf] * len(nodes) for _ in range(n_units)]
        pick = [[-1] * len(nodes) for _ in range(n_units)]
        for u, row in enumerate(rows):
            for nid, (c, i) in _cheapest(*row).items():
                cost[u][col[nid]], pick[u][col[nid]] = c, i
    size = 1 << n_units
    block, block_node = _blocks(cost, [fixed[n] for n in nodes], size)
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
                choice[u] = int(pick[u][j])
        mask ^= sub
        if cap is not None:
            layer -= 1
    return Solution(choice=choice, cost=best_total, optimal=True, states=states, method="subset_dp")


#: a block must beat serving its units apart by more than this to be kept (far above the
#: DP's tie tolerance, so a dropped block could never have been chosen, not even on a tie)
_MARGIN = 1e-6
#: the sparse paths' budget: one-node options read (beyond it the dense blocks, built as
#: arrays, are cheaper to set up), node subsets looked at, blocks of two or more units kept
#: top-down
SPARSE_OPTIONS = 6000
SPARSE_SUBSETS = 8192
SPARSE_BLOCKS = 24


def _solve_sparse(
    at: list[dict[str, tuple[float, int]]],
    pen: list[float],
    pen_pick: list[int],
    fixed: dict[str, float],
    cap: int | None,
) -> Solution | None:
    """The DP top-down over the masks it reaches, with only the blocks that can be chosen.

    Without a shipment cap, a block of several units is worth keeping only when one node
    serves them for less than serving each at its own best node; on most orders few are (lines whose SKUs few nodes
    share), and then the DP reaches a handful of the 2^L masks. ``None`` beyond the budget
    (many nodes stocking many of the lines): the dense DP takes those."""
    n_units = len(at)
    inf = math.inf
    single: list[float] = []
    blocks: dict[int, tuple[float, str]] = {}
    for u, mine in enumerate(at):
        best, best_n = inf, ""
        for nid, (c, _) in mine.items():
            v = fixed[nid] + c
            if v < best or (v == best and nid < best_n):
                best, best_n = v, nid
        single.append(best)
        if best_n:
            blocks[1 << u] = (best, best_n)
    # Without a cap, a block that costs more than serving its units apart is never chosen;
    # under a cap, fewer shipments can be worth more, and every block stays.
    margin = _MARGIN if cap is None else inf
    near: dict[str, list[tuple[int, float]]] = {}
    most = 0  # node subsets of two or more units so far, an upper bound of what is kept
    for u, mine in enumerate(at):
        limit = single[u] + margin
        for nid, (c, _) in mine.items():
            if c <= limit:  # else serving u elsewhere beats adding it to any block here
                here = near.setdefault(nid, [])
                here.append((u, c))
                k = len(here)
                if k > 1:
                    most += 1 << (k - 1) if k > 2 else 4
        if most > SPARSE_SUBSETS:
            return None
    # a block here must save at least the node's fixed cost over serving its units apart
    worth: list[tuple[str, list[tuple[int, float]]]] = []
    subsets = 0
    for nid, units in near.items():
        if len(units) > 1 and sum(single[u] - c for u, c in units) >= fixed[nid] - margin:
            worth.append((nid, units))
            subsets += 1 << len(units)
    if subsets > SPARSE_SUBSETS:
        return None
    for nid, units in worth:
        entries: list[tuple[int, float, float]] = [(0, fixed[nid], 0.0)]
        for u, c in reversed(units):  # summed as the dense blocks are: highest unit first
            bit, su = 1 << u, single[u]
            entries += [(m | bit, v + c, s + su) for m, v, s in entries]
        for m, v, s in entries:
            if m & (m - 1) == 0 or v > s + margin:
                continue
            had = blocks.get(m)
            if had is None or v < had[0] or (v == had[0] and nid < had[1]):
                blocks[m] = (v, nid)
    if len(blocks) - sum(1 for m in blocks if m & (m - 1) == 0) > SPARSE_BLOCKS:
        if cap is not None:
            return None
        return _solve_pairs(blocks, at, pen, pen_pick)
    by_low: list[list[tuple[int, float]]] = [[] for _ in range(n_units)]
    for m, (v, _) in blocks.items():
        by_low[(m & -m).bit_length() - 1].append((m, v))
    for lst in by_low:
        lst.sort(reverse=True)  # largest block first: it is kept on a tie, as in the dense DP
    shift = n_units
    layers = cap if cap is not None else 0
    memo: dict[int, tuple[float, int]] = {}
    states = 0

    def least(mask: int, k: int) -> float:
        """Least cost of ``mask`` with at most ``k`` more shipments (unbounded without a cap)."""
        nonlocal states
        if mask == 0:
            return 0.0
        key = mask | k << shift
        got = memo.get(key)
        if got is not None:
            return got[0]
        low = mask & -mask
        u = low.bit_length() - 1
        v_best, b_best = inf, 0
        if cap is None or k > 0:
            k1 = k - 1 if cap is not None else 0
            for b, v in by_low[u]:
                if b & mask == b:
                    states += 1
                    w = v + least(mask ^ b, k1)
                    if w < v_best - _TIE:
                        v_best, b_best = w, b
        states += 1
        w = pen[u] + least(mask ^ low, k)
        if w < v_best - _TIE:
            v_best, b_best = w, -low
        memo[key] = (v_best, b_best)
        return v_best

    full = (1 << n_units) - 1
    total = least(full, layers)
    if not math.isfinite(total):
        return None
    choice = [-1] * n_units
    mask, k = full, layers
    while mask:
        b = memo[mask | k << shift][1]
        if b < 0:
            u = (-b).bit_length() - 1
            choice[u] = pen_pick[u]
            mask ^= -b
            continue
        nid = blocks[b][1]
        for u in range(n_units):
            if b >> u & 1:
                choice[u] = at[u][nid][1]
        mask ^= b
        if cap is not None:
            k -= 1
    return Solution(choice=choice, cost=total, optimal=True, states=states, method="subset_dp")


#: the bottom-up sparse DP's budget, as a share of the dense DP's (mask, block) pairs
SPARSE_PAIRS_SHARE = 0.5


def _solve_pairs(
    blocks: dict[int, tuple[float, str]],
    at: list[dict[str, tuple[float, int]]],
    pen: list[float],
    pen_pick: list[int],
) -> Solution | None:
    """The DP over the masks reached from the full one, each reading only the kept blocks that
    hold its lowest unit (no cap): many kept blocks, but far fewer (mask, block) pairs than
    the dense DP's.
    A unit's one-unit block is its best node or, when cheaper, leaving it unmet."""
    n_units = len(at)
    full = (1 << n_units) - 1
    unmet = set()
    for u in range(n_units):
        had = blocks.get(1 << u)
        if had is None or pen[u] < had[0]:
            blocks[1 << u] = (pen[u], "")
            unmet.add(u)
    masks = sorted(blocks, reverse=True)  # largest block first: it is kept on a tie
    pairs = 0
    for m in masks:
        low = m & -m
        pairs += 1 << (full & ~m & ~(2 * low - 1)).bit_count()
    if pairs > SPARSE_PAIRS_SHARE * (3**n_units - 1) // 2:
        return None
    values = [blocks[m][0] for m in masks]
    if _np is not None:
        g, arg, states = _pairs_numpy(masks, values, n_units)
    else:
        g, arg, states = _pairs_python(masks, values, n_units)
    total = g[full]
    if not math.isfinite(total):
        return None
    choice = [-1] * n_units
    mask = full
    while mask:
        b = arg[mask]
        nid = blocks[b][1]
        for u in range(n_units):
            if b >> u & 1:
                choice[u] = pen_pick[u] if u in unmet and b == 1 << u else at[u][nid][1]
        mask ^= b
    return Solution(choice=choice, cost=total, optimal=True, states=states, method="subset_dp")


def _pairs_python(masks: list[int], values: list[float], n_units: int) -> tuple[Any, Any, int]:
    """g[mask] and the block chosen for it, top-down over the masks reached from the full
    one, scanning each mask's blocks largest first; and the (mask, block) pairs read."""
    by_low: list[list[tuple[int, float]]] = [[] for _ in range(n_units)]
    for m, v in zip(masks, values, strict=True):
        by_low[(m & -m).bit_length() - 1].append((m, v))
    g: dict[int, float] = {0: 0.0}
    arg: dict[int, int] = {}
    states = 0

    def least(mask: int) -> float:
        nonlocal states
        got = g.get(mask)
        if got is not None:
            return got
        best, best_b = math.inf, 0
        for b, v in by_low[(mask & -mask).bit_length() - 1]:
            if b & mask == b:
                states += 1
                w = v + least(mask ^ b)
                if w < best - _TIE:
                    best, best_b = w, b
        g[mask], arg[mask] = best, best_b
        return best

    least((1 << n_units) - 1)
    return g, arg, states


def _pairs_numpy(masks: list[int], values: list[float], n_units: int) -> tuple[Any, Any, int]:
    """``_pairs_python`` as array operations: first top-down, one mask size at a time, the
    masks reached and their (mask, block) pairs; then bottom-up each size's pairs at once (a
    mask reads only smaller masks' final values). Ties keep the largest block."""
    np = _np
    size = 1 << n_units
    full = size - 1
    bm = np.asarray(masks, dtype=np.int64)  # largest first
    blk = np.full(size, math.inf)
    blk[bm] = values
    low_unit, by_size = _mask_tables(n_units)
    lows = low_unit[bm]
    order = np.argsort(lows, kind="stable")  # by lowest unit, largest block first within
    lows_sorted = lows[order]
    counts = np.bincount(lows, minlength=n_units)
    first = np.r_[0, np.cumsum(counts)[:-1]]
    table = np.zeros((n_units, int(counts.max())), dtype=np.int64)  # 0: no block
    table[lows_sorted, np.arange(len(bm)) - first[lows_sorted]] = bm[order]
    reached = np.zeros(size, dtype=bool)
    reached[full] = True
    levels: list[tuple[Any, Any]] = []
    states = 0
    for k in range(n_units, 0, -1):
        at_k = by_size[k]
        ms = at_k[reached[at_k]]
        if not len(ms):
            continue
        cand = table[low_unit[ms]]
        r, c = np.nonzero((cand != 0) & (cand & ~ms[:, None] == 0))
        pm, pb = ms[r], cand[r, c]
        reached[pm ^ pb] = True
        levels.append((pm, pb))
        states += len(pm)
    g = np.full(size, math.inf)
    g[0] = 0.0
    arg = np.zeros(size, dtype=np.int64)
    for pm, pb in reversed(levels):
        v = blk[pb] + g[pm ^ pb]
        starts = np.flatnonzero(np.r_[True, pm[1:] != pm[:-1]])
        m = np.minimum.reduceat(v, starts)
        near = v <= np.repeat(m, np.diff(np.r_[starts, len(pm)])) + _TIE
        chosen = np.maximum.reduceat(np.where(near, pb, 0), starts)
        mk = pm[starts]
        arg[mk] = chosen
        g[mk] = blk[chosen] + g[mk ^ chosen]
    return g.tolist(), arg.tolist(), states


@lru_cache(maxsize=MAX_LINES + 1)
def _mask_tables(n_units: int) -> tuple[Any, list[Any]]:
    """Every mask's lowest unit, and the masks of each size (index: popcount)."""
    np = _np
    size = 1 << n_units
    bits = np.zeros(size, dtype=np.int64)
    low = np.zeros(size, dtype=np.int64)
    for u in range(n_units):
        bits[1 << u : 2 << u] = bits[: 1 << u] + 1
        low[(1 << u) :: 2 << u] = u  # masks whose lowest set bit is u: odd multiples of 2^u
    return low, [np.flatnonzero(bits == k) for k in range(n_units + 1)]


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
