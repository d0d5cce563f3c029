"""Allocation: choose one option per unit (a line, or lines that ship together) so that the
sum of line costs plus a fixed cost per node used is minimal, within stock and shipment limits.

Exact branch-and-bound for ordinary orders, seeded by greedy + local search. The bound
charges each unassigned unit its cheapest option, where a node not yet used costs its
fixed cost divided by the number of units that could share it (admissible); options that
cannot beat the incumbent even at that bound are removed first (reduced-cost fixing).
Beyond ``exact_max_lines`` or the state budget, the same search stops early and the plan
says it is not proven optimal (bounded search).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

EPS = 1e-9
UNMET_PENALTY = 1e6  # per unit left unserved: serving more always beats serving cheaper


@dataclass(frozen=True, slots=True)
class Part:
    line: int
    node_id: str
    qty: float


@dataclass(frozen=True, slots=True)
class Option:
    """One way to serve a unit: parts at nodes, the rest unmet; ``cost`` excludes node fixed costs."""

    parts: tuple[Part, ...]
    cost: float
    nodes: tuple[str, ...]
    unmet: float
    use: tuple[tuple[tuple[str, str], float], ...]  # ((node_id, sku key), qty) drawn from stock
    key: tuple[tuple[str, float, int], ...] = ()  # deterministic tie-break: node ids first

    @staticmethod
    def make_key(parts: tuple[Part, ...]) -> tuple[tuple[str, float, int], ...]:
        return tuple((p.node_id, -p.qty, p.line) for p in parts)


class Options(Sequence[Option]):
    """A unit's options with its one-node options held as node ids and costs: an order on
    200-node SKUs has hundreds of them per line, and the subset DP and the explanation read
    them as arrays. Reading one by index builds the ``Option`` (what ``make_option`` gives);
    the other options follow them in ``rest``."""

    __slots__ = ("_made", "costs", "line", "node_ids", "qty", "rest", "sku")

    def __init__(
        self,
        line: int,
        qty: float,
        sku: str,
        node_ids: list[str],
        costs: list[float],
        rest: list[Option],
    ) -> None:
        self.line, self.qty, self.sku = line, qty, sku
        self.node_ids, self.costs, self.rest = node_ids, costs, rest
        self._made: dict[int, Option] = {}

    def __len__(self) -> int:
        return len(self.node_ids) + len(self.rest)

    @overload
    def __getitem__(self, k: int) -> Option: ...

    @overload
    def __getitem__(self, k: slice) -> list[Option]: ...

    def __getitem__(self, k: int | slice) -> Option | list[Option]:
        if isinstance(k, slice):
            return [self[j] for j in range(*k.indices(len(self)))]
        n = len(self.node_ids)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(k)
        if k >= n:
            return self.rest[k - n]
        made = self._made.get(k)
        if made is None:
            nid, q = self.node_ids[k], self.qty
            made = self._made[k] = Option(
                (Part(self.line, nid, q),),
                self.costs[k],
                (nid,),
                0.0,
                (((nid, self.sku), 0.0 + q),),
                ((nid, -q, self.line),),
            )
        return made


@dataclass(slots=True)
class Problem:
    units: list[Sequence[Option]]
    fixed: dict[str, float]
    stock: dict[tuple[str, str], float]
    max_shipments: int | None


@dataclass(slots=True)
class Solution:
    choice: list[int]
    cost: float
    optimal: bool
    states: int
    method: str


class _State:
    """Mutable search state: stock left and how many chosen options use each node."""

    __slots__ = ("left", "max_ship", "p", "used")

    def __init__(self, p: Problem) -> None:
        self.p = p
        self.left = dict(p.stock)
        self.used: dict[str, int] = {}
        self.max_ship = p.max_shipments

    def marginal(self, o: Option) -> float:
        fixed, used = self.p.fixed, self.used
        m = o.cost
        for n in o.nodes:
            if n not in used:
                m += fixed[n]
        return m

    def feasible(self, o: Option) -> bool:
        left = self.left
        for k, q in o.use:
            if left.get(k, 0.0) < q - EPS:
                return False
        if self.max_ship is not None:
            new = sum(1 for n in o.nodes if n not in self.used)
            if new and len(self.used) + new > self.max_ship:
                return False
        return True

    def apply(self, o: Option) -> None:
        left, used = self.left, self.used
        for k, q in o.use:
            left[k] = left.get(k, 0.0) - q
        for n in o.nodes:
            used[n] = used.get(n, 0) + 1

    def undo(self, o: Option) -> None:
        left, used = self.left, self.used
        for k, q in o.use:
            left[k] += q
        for n in o.nodes:
            c = used[n] - 1
            if c:
                used[n] = c
            else:
                del used[n]


def total_cost(p: Problem, choice: Sequence[int]) -> float:
    used: set[str] = set()
    cost = 0.0
    for u, i in enumerate(choice):
        o = p.units[u][i]
        cost += o.cost
        used.update(o.nodes)
    return cost + sum(p.fixed[n] for n in used)


def _best_option(st: _State, opts: Sequence[Option]) -> int:
    best_i, best_m, best_k = -1, math.inf, None
    for i, o in enumerate(opts):
        if not st.feasible(o):
            continue
        m = st.marginal(o)
        if m < best_m - EPS or (abs(m - best_m) <= EPS and (best_k is None or o.key < best_k)):
            best_i, best_m, best_k = i, m, o.key
    return best_i


def greedy(p: Problem, order: Sequence[int]) -> list[int]:
    st = _State(p)
    choice = [-1] * len(p.units)
    for u in order:
        i = _best_option(st, p.units[u])
        if i < 0:  # pragma: no cover - every unit carries an always-feasible unmet option
            raise RuntimeError("no feasible option")
        choice[u] = i
        st.apply(p.units[u][i])
    return choice


def local_search(p: Problem, choice: list[int], rounds: int) -> list[int]:
    """1-move improvement: re-seat one unit at a time at its best option given the rest."""
    st = _State(p)
    for u, i in enumerate(choice):
        st.apply(p.units[u][i])
    for _ in range(rounds):
        improved = False
        for u, opts in enumerate(p.units):
            cur = opts[choice[u]]
            st.undo(cur)
            before = st.marginal(cur)
            i = _best_option(st, opts)
            if i != choice[u] and st.marginal(opts[i]) < before - 1e-7:
                choice[u] = i
                improved = True
            st.apply(opts[choice[u]])
        # close a node: move every unit using it to its best option elsewhere
        for n in sorted(st.used):
            if n not in st.used:
                continue
            users = [u for u in range(len(choice)) if n in p.units[u][choice[u]].nodes]
            old = [choice[u] for u in users]
            base = total_cost(p, choice)
            for u in users:
                st.undo(p.units[u][choice[u]])
            for u in users:
                cands = [i for i, o in enumerate(p.units[u]) if n not in o.nodes]
                j = _best_option(st, [p.units[u][i] for i in cands])  # unmet is always there
                choice[u] = cands[j]
                st.apply(p.units[u][choice[u]])
            if total_cost(p, choice) < base - 1e-7:
                improved = True
                continue
            for u in users:
                st.undo(p.units[u][choice[u]])
            for u, i in zip(users, old, strict=True):
                choice[u] = i
                st.apply(p.units[u][i])
        if not improved:
            break
    return choice


def _unit_order(p: Problem) -> list[int]:
    """Most constrained first, then the unit whose best option costs most."""

    def key(u: int) -> tuple[int, float, int]:
        opts = p.units[u]
        served = sum(1 for o in opts if o.parts)
        return (served, -min(o.cost for o in opts), u)

    return sorted(range(len(p.units)), key=key)


def _prune(p: Problem, ub: float, keep: list[int]) -> list[list[int]]:
    """Reduced-cost fixing: drop options that cannot appear in any plan cheaper than ``ub``."""
    minc = [min(o.cost for o in opts) for opts in p.units]
    total_min = sum(minc)
    alive: list[list[int]] = []
    for u, opts in enumerate(p.units):
        rest = total_min - minc[u]
        idx = []
        for i, o in enumerate(opts):
            floor = o.cost + rest + (min(p.fixed[n] for n in o.nodes) if o.nodes else 0.0)
            if i == keep[u] or floor <= ub + 1e-7:
                idx.append(i)
        alive.append(idx)
    return alive


def solve(p: Problem, *, max_states: int, local_rounds: int = 4) -> Solution:
    """Best choice of options; ``optimal`` tells whether the search finished within budget."""
    order = _unit_order(p)
    choice = local_search(p, greedy(p, order), local_rounds)
    best = total_cost(p, choice)
    alive = _prune(p, best, choice)
    n_units = len(p.units)

    # per-unit data for the bound, over surviving options only
    k: dict[str, int] = {}
    for u in range(n_units):
        seen: set[str] = set()
        for i in alive[u]:
            seen.update(p.units[u][i].nodes)
        for n in seen:
            k[n] = k.get(n, 0) + 1
    share = {n: p.fixed[n] / c for n, c in k.items()}
    static_lb: list[float] = []
    single_at: list[dict[str, float]] = []
    multi: list[list[Option]] = []
    for u in range(n_units):
        s_lb = math.inf
        at: dict[str, float] = {}
        mu: list[Option] = []
        for i in alive[u]:
            o = p.units[u][i]
            if len(o.nodes) <= 1:
                v = o.cost + (share[o.nodes[0]] if o.nodes else 0.0)
                s_lb = min(s_lb, v)
                if o.nodes:
                    n = o.nodes[0]
                    at[n] = min(at.get(n, math.inf), o.cost)
            else:
                mu.append(o)
        static_lb.append(s_lb)
        single_at.append(at)
        multi.append(mu)

    st = _State(p)
    cur = [-1] * n_units
    best_choice = list(choice)
    states = 0
    aborted = False
    ordered_opts = [list(alive[u]) for u in range(n_units)]

    def lb(u: int) -> float:
        v = static_lb[u]
        at = single_at[u]
        if len(at) <= len(st.used):
            for n, cn in at.items():
                if cn < v and n in st.used:
                    v = cn
        else:
            for n in st.used:
                c = at.get(n)
                if c is not None and c < v:
                    v = c
        for o in multi[u]:
            m = o.cost
            for n in o.nodes:
                if n not in st.used:
                    m += share[n]
            if m < v:
                v = m
        return v

    def dfs(depth: int, cost: float) -> None:
        nonlocal best, states, aborted
        if aborted:
            return
        states += 1
        if states > max_states:
            aborted = True
            return
        if depth == n_units:
            if cost < best - 1e-7:
                best = cost
                best_choice[:] = cur
            return
        bound = cost
        for j in range(depth, n_units):
            bound += lb(order[j])
            if bound >= best - 1e-7:
                return
        u = order[depth]
        opts = p.units[u]
        cand = []
        for i in ordered_opts[u]:
            o = opts[i]
            if st.feasible(o):
                cand.append((st.marginal(o), o.key, i))
        cand.sort()
        for m, _, i in cand:
            if cost + m >= best - 1e-7:
                break
            o = opts[i]
            st.apply(o)
            cur[u] = i
            dfs(depth + 1, cost + m)
            st.undo(o)
            cur[u] = -1
            if aborted:
                return

    dfs(0, 0.0)
    return Solution(
        choice=best_choice,
        cost=best,
        optimal=not aborted,
        states=states,
        method="branch_and_bound" if not aborted else "bounded",
    )
