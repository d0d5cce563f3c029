"""Perfect-foresight bound: the cheapest plan for one day's orders had the shelves and the
carriers been known in advance.

It is the yardstick of the backtest. A policy only sees the books and predictions; the
bound sees the true shelf stock (so nothing is ever rejected) and the delivery days each
parcel would really take. It is priced with the routing cost terms of ``routing.ratings``
(shipping by zone and weight, handling, the parcel fee, lateness against the promise) and
solved as a mixed-integer programme with SciPy's HiGHS (``scipy.optimize.milp``).

Variables, per candidate (line, node) pair ``p`` of order ``o`` and parcel ``s`` = (o, node):

* ``x_p`` units served (integer, ``0..qty``), ``z_p`` the pair is used (binary),
* ``y_s`` the parcel is sent (binary; merged into ``z_p`` when only one pair can use it).

minimise  Σ unit_p·x_p + part_p·z_p + fee_s·y_s + unfilled·(qty_l − Σ_p x_p)
s.t.      Σ_p x_p ≤ qty_l per line;  Σ x_p ≤ stock per (node, sku);  x_p ≤ qty_l·z_p;
          Σ_p z_p ≤ max parts per line;  z_p ≤ y_s;  Σ_s y_s ≤ capacity per node;
          Σ_s y_s ≤ max shipments per order.

Every plan a policy can carry out is feasible here (it may also ship part of an order and
it ignores rejections), so the optimum is a lower bound on any policy's realised cost on the
same terms. When HiGHS does not prove the optimum within the time limit, the LP relaxation
(integrality dropped) is reported instead: still a valid, looser lower bound. Each figure
says which one it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.optimize import LinearConstraint, linprog, milp

from routing.domain import Network, Order
from routing.fences import evaluate
from routing.policy import Policy
from routing.ratings import rate_realised, shipment_cost

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Method = Literal["mip", "lp"]

#: seconds HiGHS may spend proving one day's optimum before the LP relaxation is used
DEFAULT_TIME_LIMIT = 20.0
MIP_REL_GAP = 1e-4
#: candidates per line the LP starts from before pricing the rest in
START_PER_LINE = 6
#: times the MIP is re-run after pairs it left out turned out able to matter
MAX_MIP_ROUNDS = 4
UNLIMITED = -1


@dataclass(frozen=True)
class BoundDay:
    """One day's bound problem as plain arrays (indices are positions in the arrays).

    Lines belong to orders (``line_order``); pairs are the (line, node) candidates that pass
    the fences on the true shelf. ``stock`` is true units per (node, sku index);
    ``capacity`` parcels a node may still take (``UNLIMITED`` = -1). Costs are in currency:
    ``pair_unit_cost`` per unit served, ``pair_part_cost`` once per line part (handling and
    realised lateness), ``pair_ship_cost`` the parcel fee of the (order, node) parcel the
    pair belongs to, and ``unfilled_cost`` per unit left unserved.
    """

    line_order: IntArray
    line_qty: IntArray
    line_sku: IntArray
    line_max_parts: IntArray
    order_max_shipments: IntArray  # UNLIMITED or a cap per order
    pair_line: IntArray
    pair_node: IntArray
    pair_unit_cost: FloatArray
    pair_part_cost: FloatArray
    pair_ship_cost: FloatArray
    pair_late_days: FloatArray
    stock: IntArray  # (n_nodes, n_skus)
    capacity: IntArray  # (n_nodes,)
    unfilled_cost: float
    #: the cost terms of each pair, for the breakdown: shipping per unit, handling per part
    pair_handling: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        n_lines, n_pairs = len(self.line_qty), len(self.pair_line)
        for name in ("line_order", "line_sku", "line_max_parts"):
            if len(getattr(self, name)) != n_lines:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, lines {n_lines}")
        for name in (
            "pair_node",
            "pair_unit_cost",
            "pair_part_cost",
            "pair_ship_cost",
            "pair_late_days",
        ):
            if len(getattr(self, name)) != n_pairs:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, pairs {n_pairs}")
        if len(self.pair_handling) not in (0, n_pairs):
            raise ValueError("pair_handling must be empty or one entry per pair")
        if self.stock.ndim != 2 or self.capacity.shape != (self.stock.shape[0],):
            raise ValueError("stock must be (nodes, skus) and capacity one entry per node")
        if n_lines and (self.line_qty < 1).any():
            raise ValueError("line_qty must be at least 1")
        if n_pairs and (
            self.pair_line.min() < 0
            or self.pair_line.max() >= n_lines
            or self.pair_node.min() < 0
            or self.pair_node.max() >= self.stock.shape[0]
        ):
            raise ValueError("pair_line / pair_node point outside the lines / nodes")
        if n_lines and self.line_order.max() >= len(self.order_max_shipments):
            raise ValueError("order_max_shipments needs one entry per order")
        if not self.unfilled_cost >= 0:
            raise ValueError("unfilled_cost must be >= 0")
        # one parcel fee per (order, node): a pair's fee must agree with its parcel's
        _, inv = self.shipments()
        first = np.full(int(inv.max(initial=-1)) + 1, np.nan)
        first[inv[::-1]] = self.pair_ship_cost[::-1]
        if n_pairs and not np.allclose(first[inv], self.pair_ship_cost):
            raise ValueError("pairs of one (order, node) parcel carry different parcel fees")

    @property
    def n_orders(self) -> int:
        return len(self.order_max_shipments)

    def shipments(self) -> tuple[IntArray, IntArray]:
        """Unique (order, node) parcel keys and each pair's parcel index."""
        n_nodes = self.stock.shape[0]
        key = self.line_order[self.pair_line] * n_nodes + self.pair_node
        uniq, inv = np.unique(key, return_inverse=True)
        return uniq.astype(np.int64), inv.astype(np.int64)


@dataclass(frozen=True)
class Costs:
    """A plan priced on the bound's terms; ``total`` includes the unfilled penalty."""

    total: float
    shipping: float
    handling: float
    late: float
    parcels: int
    served_units: float
    unfilled_units: float


@dataclass(frozen=True)
class BoundResult:
    """One day's bound. ``value`` is a valid lower bound on any policy's cost that day."""

    method: Method
    value: float
    orders: int
    seconds: float
    #: cost of the best plan found (MIP) — an upper end; None for the LP relaxation
    incumbent: float | None
    #: relative gap between ``incumbent`` and ``value`` (0 when proven optimal)
    gap: float | None
    pairs: int
    #: units per pair of the plan behind the figure (fractional for the LP)
    plan: FloatArray
    costs: Costs
    status: str

    @property
    def per_order(self) -> float:
        return self.value / self.orders if self.orders else 0.0


@dataclass(frozen=True)
class _Model:
    """The MIP in matrix form plus where each line's and shelf's row sits (for duals)."""

    c: FloatArray
    const: float
    lb: FloatArray
    ub: FloatArray
    a: sparse.csr_array
    lo: FloatArray
    hi: FloatArray
    demand_row: IntArray  # per line
    parts_row: IntArray  # per line, -1 where the line's parts are not limited
    stock_key: IntArray  # sorted node * n_skus + sku keys that have a row
    stock_row: IntArray  # row of each of those keys
    ship_key: IntArray  # sorted order * n_nodes + node parcel keys
    ship_ind: IntArray  # the column that opens each parcel
    cap_row: IntArray  # per node, -1 where capacity cannot bind
    order_cap_row: IntArray  # per order, -1 where the shipment cap cannot bind

    def constraint(self) -> LinearConstraint:
        return LinearConstraint(self.a, self.lo, self.hi)


def _model(day: BoundDay) -> _Model:
    """Objective, bounds and constraint matrix of the day's MIP."""
    n_pairs, n_lines = len(day.pair_line), len(day.line_qty)
    n_nodes = day.stock.shape[0]
    qty = day.line_qty[day.pair_line].astype(float)
    ship_key, ship_of = day.shipments()
    n_ship = len(ship_key)
    pairs_per_ship = np.bincount(ship_of, minlength=n_ship)
    folded = pairs_per_ship[ship_of] == 1  # this pair is the only one that can open its parcel
    # a single-unit line needs no separate "used" variable: x_p is already 0 or 1
    multi = np.flatnonzero(qty > 1)
    xi = np.arange(n_pairs)
    zi = xi.copy()
    zi[multi] = n_pairs + np.arange(len(multi))
    own_y = np.flatnonzero(pairs_per_ship > 1)
    y_index = np.full(n_ship, -1, dtype=np.int64)
    y_index[own_y] = n_pairs + len(multi) + np.arange(len(own_y))
    n_var = n_pairs + len(multi) + len(own_y)
    ind = np.where(folded, zi, y_index[ship_of])
    # the indicator variable of every parcel (a pair's z when folded, else its own y)
    ship_ind = np.empty(n_ship, dtype=np.int64)
    ship_ind[ship_of] = ind

    c = np.zeros(n_var)
    c[xi] = day.pair_unit_cost - day.unfilled_cost
    np.add.at(c, zi, day.pair_part_cost + np.where(folded, day.pair_ship_cost, 0.0))
    fee = np.zeros(n_ship)
    fee[ship_of] = day.pair_ship_cost
    c[y_index[own_y]] = fee[own_y]
    const = day.unfilled_cost * float(day.line_qty.sum())

    lb = np.zeros(n_var)
    ub = np.ones(n_var)
    ub[xi] = qty

    rows: list[IntArray] = []
    cols: list[IntArray] = []
    vals: list[FloatArray] = []
    lo: list[FloatArray] = []
    hi: list[FloatArray] = []
    r = 0

    def block(
        row: IntArray, col: IntArray, val: FloatArray, low: FloatArray, up: FloatArray
    ) -> None:
        nonlocal r
        rows.append(row + r)
        cols.append(col)
        vals.append(val)
        lo.append(low)
        hi.append(up)
        r += len(low)

    # demand per line, max parts per line
    demand_row = np.arange(n_lines) + r
    block(day.pair_line, xi, np.ones(n_pairs), np.zeros(n_lines), day.line_qty.astype(float))
    # a line's parts are limited only where it could otherwise use more nodes than allowed
    n_cand = np.bincount(day.pair_line, minlength=n_lines)
    binds = day.line_max_parts < np.minimum(day.line_qty, n_cand)
    mp = binds[day.pair_line]
    parts_cap = day.line_max_parts
    parts_row = np.full(n_lines, -1, dtype=np.int64)
    if mp.any():
        pos = np.full(n_lines, -1, dtype=np.int64)
        lines_mp = np.unique(day.pair_line[mp])
        pos[lines_mp] = np.arange(len(lines_mp))
        parts_row[lines_mp] = pos[lines_mp] + r
        block(
            pos[day.pair_line[mp]],
            zi[mp],
            np.ones(int(mp.sum())),
            np.zeros(len(lines_mp)),
            parts_cap[lines_mp].astype(float),
        )
    # true shelf stock per (node, sku)
    sku = day.line_sku[day.pair_line]
    skey = day.pair_node * day.stock.shape[1] + sku
    suniq, sinv = np.unique(skey, return_inverse=True)
    stock_row = np.arange(len(suniq)) + r
    block(
        sinv,
        xi,
        np.ones(n_pairs),
        np.full(len(suniq), -np.inf),
        day.stock.reshape(-1)[suniq].astype(float),
    )
    # x_p <= qty * z_p (multi-unit lines only)
    if len(multi):
        k = np.arange(len(multi))
        block(
            np.r_[k, k],
            np.r_[xi[multi], zi[multi]],
            np.r_[np.ones(len(multi)), -qty[multi]],
            np.full(len(multi), -np.inf),
            np.zeros(len(multi)),
        )
    # z_p <= y_s for pairs sharing a parcel
    shared = np.flatnonzero(~folded)
    if len(shared):
        k = np.arange(len(shared))
        block(
            np.r_[k, k],
            np.r_[zi[shared], y_index[ship_of[shared]]],
            np.r_[np.ones(len(shared)), -np.ones(len(shared))],
            np.full(len(shared), -np.inf),
            np.zeros(len(shared)),
        )

    def cap_rows(group: IntArray, n_groups: int, cap: IntArray) -> IntArray:
        """``Σ parcels of a group <= cap`` where the group could exceed it; row per group."""
        count = np.bincount(group, minlength=n_groups)
        tight = np.flatnonzero((cap != UNLIMITED) & (count > cap))
        pos = np.full(n_groups, -1, dtype=np.int64)
        pos[tight] = np.arange(len(tight))
        out = np.where(pos >= 0, pos + r, -1)
        m = pos[group] >= 0
        block(
            pos[group[m]],
            ship_ind[m],
            np.ones(int(m.sum())),
            np.full(len(tight), -np.inf),
            cap[tight].astype(float),
        )
        return out

    # parcels per node within capacity, per order within the policy's cap
    cap_row = cap_rows(ship_key % n_nodes, n_nodes, day.capacity)
    order_cap_row = cap_rows(ship_key // n_nodes, day.n_orders, day.order_max_shipments)

    a = sparse.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(r, n_var)
    )
    return _Model(
        c=c,
        const=const,
        lb=lb,
        ub=ub,
        a=a,
        lo=np.concatenate(lo),
        hi=np.concatenate(hi),
        demand_row=demand_row,
        parts_row=parts_row,
        stock_key=suniq.astype(np.int64),
        stock_row=stock_row,
        ship_key=ship_key,
        ship_ind=ship_ind,
        cap_row=cap_row,
        order_cap_row=order_cap_row,
    )


def price(day: BoundDay, plan: npt.ArrayLike, *, check: bool = True) -> Costs:
    """Price units per pair on the bound's terms; ``check`` rejects plans the world forbids.

    This is how a policy's realised assignment is scored against the bound: same pairs,
    same fees, same unfilled penalty.
    """
    x = np.asarray(plan, dtype=float)
    if x.shape != day.pair_line.shape:
        raise ValueError(f"plan needs one quantity per pair ({len(day.pair_line)}), got {x.shape}")
    used = x > 1e-9
    n_lines = len(day.line_qty)
    served = np.bincount(day.pair_line, weights=x, minlength=n_lines)
    ship_key, ship_of = day.shipments()
    open_ship = np.zeros(len(ship_key), dtype=bool)
    open_ship[ship_of[used]] = True
    if check:
        if (x < -1e-9).any() or (served > day.line_qty + 1e-9).any():
            raise ValueError("plan serves a negative quantity or more than a line ordered")
        skey = day.pair_node * day.stock.shape[1] + day.line_sku[day.pair_line]
        drawn = np.bincount(skey, weights=x, minlength=day.stock.size)
        if (drawn > day.stock.reshape(-1) + 1e-9).any():
            raise ValueError("plan draws more than the true shelf holds")
        parts = np.bincount(day.pair_line[used], minlength=n_lines)
        if (parts > day.line_max_parts).any():
            raise ValueError("plan splits a line over more nodes than the policy allows")
        n_nodes = day.stock.shape[0]
        per_node = np.bincount(ship_key[open_ship] % n_nodes, minlength=n_nodes)
        if ((day.capacity != UNLIMITED) & (per_node > day.capacity)).any():
            raise ValueError("plan sends a node more parcels than its capacity")
        per_order = np.bincount(ship_key[open_ship] // n_nodes, minlength=day.n_orders)
        cap = day.order_max_shipments
        if ((cap != UNLIMITED) & (per_order > cap)).any():
            raise ValueError("plan sends an order in more parcels than the policy allows")
    fee = np.zeros(len(ship_key))
    fee[ship_of] = day.pair_ship_cost
    handling = day.pair_handling if len(day.pair_handling) else np.zeros(len(x))
    shipping = float(day.pair_unit_cost @ x + fee[open_ship].sum())
    part = float(day.pair_part_cost[used].sum())
    hand = float(handling[used].sum())
    unfilled = float(day.line_qty.sum() - served.sum())
    return Costs(
        total=shipping + part + day.unfilled_cost * unfilled,
        shipping=shipping,
        handling=hand,
        late=part - hand,
        parcels=int(open_ship.sum()),
        served_units=float(served.sum()),
        unfilled_units=unfilled,
    )


def restrict(day: BoundDay, keep: BoolArray) -> BoundDay:
    """The same day with only the pairs in ``keep`` (lines, shelves and nodes unchanged)."""
    return replace(
        day,
        pair_line=day.pair_line[keep],
        pair_node=day.pair_node[keep],
        pair_unit_cost=day.pair_unit_cost[keep],
        pair_part_cost=day.pair_part_cost[keep],
        pair_ship_cost=day.pair_ship_cost[keep],
        pair_late_days=day.pair_late_days[keep],
        pair_handling=day.pair_handling[keep] if len(day.pair_handling) else day.pair_handling,
    )


def _start_pairs(day: BoundDay, per_line: int) -> BoolArray:
    """Each line's ``per_line`` cheapest candidates (whole line from one node, parcel paid)."""
    q = day.line_qty[day.pair_line]
    whole = day.pair_unit_cost * q + day.pair_part_cost + day.pair_ship_cost
    order = np.lexsort((whole, day.pair_line))
    lines = day.pair_line[order]
    first = np.searchsorted(lines, lines, side="left")
    rank = np.arange(len(order)) - first
    keep = np.zeros(len(order), dtype=bool)
    keep[order[rank < per_line]] = True
    return keep


def _row_dual(duals: FloatArray, rows: IntArray) -> FloatArray:
    """Dual of each row index, 0 for -1 (a row the restricted model does not have)."""
    if not len(duals):
        return np.zeros(len(rows))
    return np.asarray(np.where(rows >= 0, duals[np.maximum(rows, 0)], 0.0), dtype=np.float64)


def _pricing(
    day: BoundDay, m: _Model, x: FloatArray, duals: FloatArray
) -> tuple[BoolArray, FloatArray]:
    """Which pairs the restricted LP ``m`` (solution ``x``, row duals) must take in, and the
    least extra cost a plan pays for using each pair.

    Rows the restricted LP lacks are slack there (dual 0). A pair left out is priced per
    unit (``d_x``) and per use (``d_z``); it may only enter for free where its parcel can
    absorb the shortfall ``max(0, -(q·d_x + d_z))``: a new parcel up to its fee less the
    capacity duals, a parcel the LP keeps closed up to its reduced cost, an open or
    half-open one not at all. When no pair needs to enter, these extended duals are optimal
    for the full LP, so the restricted LP value is the full LP value; the same duals give
    each pair's least extra cost (reduced-cost fixing for the MIP).
    """
    n_nodes, n_skus = day.stock.shape
    line = day.pair_line
    q = day.line_qty[line].astype(float)
    key = day.pair_node * n_skus + day.line_sku[line]
    at = np.searchsorted(m.stock_key, key)
    has = at < len(m.stock_key)
    has[has] = m.stock_key[at[has]] == key[has]
    pi_stock = np.zeros(len(key))
    pi_stock[has] = duals[m.stock_row[at[has]]]
    d_x = day.pair_unit_cost - day.unfilled_cost - duals[m.demand_row][line] - pi_stock
    d_z = day.pair_part_cost - _row_dual(duals, m.parts_row[line])
    need = np.maximum(0.0, -(q * d_x + d_z))

    ship_key, ship_of = day.shipments()
    at = np.searchsorted(m.ship_key, ship_key)
    old = at < len(m.ship_key)
    old[old] = m.ship_key[at[old]] == ship_key[old]
    reduced = m.c - m.a.T @ duals
    slack = np.zeros(len(ship_key))
    col = m.ship_ind[at[old]]
    closed = x[col] <= 1e-9
    slack[old] = np.where(closed, np.maximum(reduced[col], 0.0), 0.0)
    fee = np.zeros(len(ship_key))
    fee[ship_of] = day.pair_ship_cost
    new = ~old
    slack[new] = (
        fee[new]
        - _row_dual(duals, m.cap_row[ship_key[new] % n_nodes])
        - _row_dual(duals, m.order_cap_row[ship_key[new] // n_nodes])
    )
    total_need = np.bincount(ship_of, weights=need, minlength=len(ship_key))
    short = total_need > slack + 1e-7
    enter = short[ship_of] & (need > 1e-9)
    # least extra cost of using a pair (x in 1..q units, z = 1), under the extended duals
    left = np.where(new, np.maximum(slack - total_need, 0.0), 0.0)
    extra = np.minimum(d_x + d_z, q * d_x + d_z) + need + left[ship_of]
    return enter, extra


def _lp(m: _Model) -> tuple[float, FloatArray, FloatArray]:
    """LP relaxation with HiGHS: value, solution and row duals (all rows are ``<=``)."""
    res = linprog(m.c, A_ub=m.a, b_ub=m.hi, bounds=np.column_stack([m.lb, m.ub]), method="highs")
    if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
        raise RuntimeError(f"bound LP failed: {res.message}")
    return float(res.fun) + m.const, res.x, res.ineqlin.marginals


def solve_bound(
    day: BoundDay,
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    relax: bool = False,
    start_per_line: int = START_PER_LINE,
) -> BoundResult:
    """The day's bound: the MIP when HiGHS proves it in ``time_limit``, else the LP relaxation.

    Most candidates of a line are far, dear nodes. The LP is solved on each line's cheapest
    few and priced out (column generation): pairs whose reduced cost is negative join until
    none is, which makes the restricted LP the full LP. The MIP then runs on those pairs;
    every pair left out is shown unable to enter a plan cheaper than the MIP's (reduced-cost
    fixing: its reduced cost exceeds the MIP-LP gap), or it joins and the MIP runs again.
    """
    t0 = time.perf_counter()
    n_pairs = len(day.pair_line)
    if n_pairs == 0:
        costs = price(day, np.zeros(0))
        return BoundResult(
            "mip", costs.total, day.n_orders, 0.0, costs.total, 0.0, 0, np.zeros(0), costs, "empty"
        )
    keep = _start_pairs(day, start_per_line)
    while True:
        sub = restrict(day, keep)
        m = _model(sub)
        lp_value, lp_x, duals = _lp(m)
        enter, enter_cost = _pricing(day, m, lp_x, duals)
        enter &= ~keep
        if not enter.any():
            break
        keep |= enter
    lp_plan = np.zeros(n_pairs)
    lp_plan[keep] = lp_x[: int(keep.sum())]
    lp_result = BoundResult(
        method="lp",
        value=lp_value,
        orders=day.n_orders,
        seconds=time.perf_counter() - t0,
        incumbent=None,
        gap=None,
        pairs=int(keep.sum()),
        plan=lp_plan,
        costs=price(day, lp_plan, check=False),
        status="LP relaxation",
    )
    if relax:
        return lp_result
    for _ in range(MAX_MIP_ROUNDS):
        left = time_limit - (time.perf_counter() - t0)
        if left <= 0:
            break
        sub = restrict(day, keep)
        m = _model(sub)
        res = milp(
            m.c,
            integrality=np.ones(len(m.c)),
            bounds=(m.lb, m.ub),
            constraints=m.constraint(),
            options={"time_limit": left, "mip_rel_gap": MIP_REL_GAP, "presolve": False},
        )
        if res.status != 0 or res.x is None:
            lp_result = replace(
                lp_result,
                seconds=time.perf_counter() - t0,
                status=f"MIP not proven in {time_limit:g}s ({res.message}); LP relaxation",
            )
            return lp_result
        incumbent = float(res.fun) + m.const
        could_enter = ~keep & (enter_cost <= incumbent - lp_value + 1e-6)
        if could_enter.sum() > keep.sum():
            # the MIP-LP gap is too wide to rule most pairs out: the full MIP would not
            # finish either, so the LP figure is the honest one
            return replace(
                lp_result,
                seconds=time.perf_counter() - t0,
                status=(
                    f"LP relaxation: the MIP gap ({incumbent - lp_value:.2f}) leaves "
                    f"{int(could_enter.sum())} pairs that could still matter"
                ),
            )
        if could_enter.any():
            keep |= could_enter
            continue
        dual = getattr(res, "mip_dual_bound", None)
        value = incumbent if dual is None or not math.isfinite(dual) else float(dual) + m.const
        value = min(value, incumbent)
        plan = np.zeros(n_pairs)
        plan[keep] = np.rint(res.x[: int(keep.sum())])
        return BoundResult(
            method="mip",
            value=value,
            orders=day.n_orders,
            seconds=time.perf_counter() - t0,
            incumbent=incumbent,
            gap=(incumbent - value) / max(abs(incumbent), 1e-9),
            pairs=int(keep.sum()),
            plan=plan,
            costs=price(day, plan, check=False),
            status="optimal",
        )
    return replace(
        lp_result,
        seconds=time.perf_counter() - t0,
        status=f"MIP not proven in {time_limit:g}s; LP relaxation",
    )


@dataclass(frozen=True)
class DayIndex:
    """How the arrays of a :class:`BoundDay` map back to ids (to score a policy's plan)."""

    order_ids: list[str]
    node_ids: list[str]
    skus: list[str]
    line_ids: list[tuple[str, str]]  # (order_id, line_id) per line
    pair_of: dict[tuple[str, str, str], int]  # (order_id, line_id, node_id) -> pair

    def plan(self, allocations: Iterable[tuple[str, str, str, float]], n_pairs: int) -> FloatArray:
        """Units per pair from (order_id, line_id, node_id, qty) rows of a realised plan."""
        x = np.zeros(n_pairs)
        for order_id, line_id, node_id, qty in allocations:
            p = self.pair_of.get((order_id, line_id, node_id))
            if p is None:
                raise KeyError(
                    f"order {order_id} line {line_id} at {node_id} is not a candidate of the bound"
                    " (fenced, or no true stock there)"
                )
            x[p] += qty
        return x


def default_unfilled_cost(day_costs: FloatArray) -> float:
    """Per unit left unserved: more than serving any one unit costs at any candidate.

    Routing never leaves a unit unmet that it can serve (its unmet penalty dwarfs every
    cost); a finite figure just above the dearest single-unit service keeps that order of
    preference while leaving the day's totals readable.
    """
    return float(np.ceil(day_costs.max(initial=0.0))) + 1.0


def build_day(
    orders: Sequence[Order],
    network: Network,
    *,
    policy: Policy | None = None,
    now: datetime,
    delivery_days: Callable[[Order, str], float] | None = None,
    delivery_days_many: Callable[[Sequence[int], Sequence[str]], npt.ArrayLike] | None = None,
    unfilled_cost: float | None = None,
    capacity: Mapping[str, int] | None = None,
) -> tuple[BoundDay, DayIndex]:
    """Bound problem for ``orders`` on ``network`` holding the **true** shelf stock.

    Candidates are what ``routing.fences`` lets through (enabled, open, channel, group,
    distance, stock, safety stock); prices come from ``routing.ratings`` with the parcel's
    realised delivery days in place of predictions: ``delivery_days(order, node_id)`` per
    parcel, or ``delivery_days_many(order_positions, node_ids)`` for every candidate parcel
    of the day in one call (vectorised; give exactly one of the two). ``capacity``
    overrides the parcels a node may still take (default: the node's daily capacity minus
    what it took today, or unlimited when the policy only penalises capacity).
    """
    pol = policy or Policy.default()
    node_ids = sorted(network.nodes)
    node_pos = {n: i for i, n in enumerate(node_ids)}
    sku_pos: dict[str, int] = {}
    line_order: list[int] = []
    line_qty: list[int] = []
    line_sku: list[int] = []
    line_parts: list[int] = []
    line_ids: list[tuple[str, str]] = []
    order_cap: list[int] = []
    p_line: list[int] = []
    p_node: list[int] = []
    p_unit: list[float] = []
    p_part: list[float] = []
    p_hand: list[float] = []
    p_ship: list[float] = []
    p_late: list[float] = []
    stock: dict[tuple[int, int], float] = {}
    pair_of: dict[tuple[str, str, str], int] = {}
    if (delivery_days is None) == (delivery_days_many is None):
        raise ValueError("give exactly one of delivery_days and delivery_days_many")
    evaluated = [evaluate(order, network, pol, now) for order in orders]
    parcels = sorted(
        {
            (o, c.node.node_id)
            for o, lcs in enumerate(evaluated)
            for lc in lcs
            for c in lc.eligible()
        }
    )
    if delivery_days_many is not None:
        got = np.asarray(
            delivery_days_many([o for o, _ in parcels], [n for _, n in parcels]), dtype=float
        )
        if got.shape != (len(parcels),):
            raise ValueError(f"delivery_days_many returned {got.shape}, wanted ({len(parcels)},)")
        transit = dict(zip(parcels, got.tolist(), strict=True))
    else:
        assert delivery_days is not None
        transit = {(o, n): float(delivery_days(orders[o], n)) for o, n in parcels}
    for o, order in enumerate(orders):
        lcs = evaluated[o]
        per_ship = max((lc.rules.per_shipment_cost for lc in lcs), default=0.0)
        caps = [lc.rules.max_shipments for lc in lcs if lc.rules.max_shipments is not None]
        cap = min(caps) if caps else pol.max_shipments
        order_cap.append(UNLIMITED if cap is None else int(cap))
        fees: dict[str, float] = {}
        days: dict[str, float] = {}
        for lc in lcs:
            line = lc.line
            if abs(line.qty - round(line.qty)) > 1e-9:
                raise ValueError(f"order {order.order_id} line {line.line_id}: qty must be whole")
            key = line.sku.casefold()
            s = sku_pos.setdefault(key, len(sku_pos))
            li = len(line_qty)
            line_order.append(o)
            line_qty.append(round(line.qty))
            line_sku.append(s)
            line_parts.append(pol.search.max_parts_per_line if lc.splittable else 1)
            line_ids.append((order.order_id, line.line_id))
            promise = (
                order.promise_days if order.promise_days is not None else lc.rules.promise_days
            )
            for c in lc.eligible():
                nid = c.node.node_id
                if nid not in fees:
                    fees[nid] = shipment_cost(c.distance_km, lc.rules, per_ship)
                    days[nid] = transit[(o, nid)]
                r = rate_realised(
                    weight_kg=line.weight_kg,
                    handling_cost=c.node.handling_cost,
                    distance_km=c.distance_km,
                    rules=lc.rules,
                    delivery_days=days[nid],
                    promise_days=promise,
                )
                n = node_pos[nid]
                sk = (n, s)
                stock[sk] = min(stock.get(sk, math.inf), c.atp)
                pair_of[(order.order_id, line.line_id, nid)] = len(p_line)
                p_line.append(li)
                p_node.append(n)
                p_unit.append(r.per_unit_shipping)
                p_part.append(r.fixed)
                p_hand.append(r.handling)
                p_ship.append(fees[nid])
                p_late.append(max(days[nid] - promise, 0.0))
    st = np.zeros((len(node_ids), max(len(sku_pos), 1)), dtype=np.int64)
    for (n, s), q in stock.items():
        st[n, s] = math.floor(q + 1e-9)
    cap_arr = np.full(len(node_ids), UNLIMITED, dtype=np.int64)
    for nid, i in node_pos.items():
        node = network.nodes[nid]
        if capacity is not None and nid in capacity:
            cap_arr[i] = max(int(capacity[nid]), 0)
        elif pol.capacity == "fence" and node.daily_capacity is not None:
            cap_arr[i] = max(node.daily_capacity - node.orders_today, 0)
    unit = np.asarray(p_unit, dtype=float)
    part = np.asarray(p_part, dtype=float)
    ship = np.asarray(p_ship, dtype=float)
    if unfilled_cost is None:
        unfilled_cost = default_unfilled_cost(unit + part + ship)
    day = BoundDay(
        line_order=np.asarray(line_order, dtype=np.int64),
        line_qty=np.asarray(line_qty, dtype=np.int64),
        line_sku=np.asarray(line_sku, dtype=np.int64),
        line_max_parts=np.asarray(line_parts, dtype=np.int64),
        order_max_shipments=np.asarray(order_cap, dtype=np.int64),
        pair_line=np.asarray(p_line, dtype=np.int64),
        pair_node=np.asarray(p_node, dtype=np.int64),
        pair_unit_cost=unit,
        pair_part_cost=part,
        pair_ship_cost=ship,
        pair_late_days=np.asarray(p_late, dtype=float),
        stock=st,
        capacity=cap_arr,
        unfilled_cost=float(unfilled_cost),
        pair_handling=np.asarray(p_hand, dtype=float),
    )
    index = DayIndex(
        order_ids=[o.order_id for o in orders],
        node_ids=node_ids,
        skus=list(sku_pos),
        line_ids=line_ids,
        pair_of=pair_of,
    )
    return day, index


def gap_closed(policy: float, baseline: float, bound: float) -> float | None:
    """Share of the baseline→bound gap a policy closes (1 = as good as perfect foresight).

    ``None`` when the baseline already sits on the bound (no gap to close).
    """
    gap = baseline - bound
    if gap <= 1e-9 * max(abs(baseline), 1.0):
        return None
    return (baseline - policy) / gap


def summarise(results: Sequence[BoundResult]) -> dict[str, Any]:
    """The JSON ``bound`` block: per-order figures over the run and how each day was solved."""
    orders = sum(r.orders for r in results)
    methods = {r.method for r in results}
    method: str = methods.pop() if len(methods) == 1 else "mixed"
    total = sum(r.value for r in results)

    def per_order(v: float) -> float:
        return v / orders if orders else 0.0

    return {
        "method": method,
        "days_mip": sum(r.method == "mip" for r in results),
        "days_lp": sum(r.method == "lp" for r in results),
        "orders": orders,
        "cost_per_order": per_order(total),
        "shipping_per_order": per_order(sum(r.costs.shipping for r in results)),
        "handling_per_order": per_order(sum(r.costs.handling for r in results)),
        "late_cost_per_order": per_order(sum(r.costs.late for r in results)),
        "shipments_per_order": per_order(sum(r.costs.parcels for r in results)),
        "unfilled_units": sum(r.costs.unfilled_units for r in results),
        "max_gap": max((r.gap or 0.0 for r in results), default=0.0),
        "seconds": sum(r.seconds for r in results),
        "daily": [
            {
                "method": r.method,
                "cost_per_order": r.per_order,
                "orders": r.orders,
                "pairs": r.pairs,
                "seconds": round(r.seconds, 3),
                "status": r.status,
            }
            for r in results
        ],
    }


def integral_plan(day: BoundDay, plan: FloatArray) -> IntArray:
    """Whole units per pair from a (possibly fractional, LP) plan, within every limit.

    Keeps the whole units of ``plan`` that still fit, then serves what is left of each line
    at its cheapest pair with stock, capacity and a part to spare (parcels already open
    first cost no fee). A playable plan, not a bound: the bound is the LP value.
    """
    n_nodes, n_skus = day.stock.shape
    ship_key, ship_of = day.shipments()
    left = day.stock.reshape(-1).astype(np.int64).copy()
    cap = day.capacity.copy()
    order_cap = day.order_max_shipments.copy()
    opened = np.zeros(len(ship_key), dtype=bool)
    served = np.zeros(len(day.line_qty), dtype=np.int64)
    parts = np.zeros(len(day.line_qty), dtype=np.int64)
    x = np.zeros(len(day.pair_line), dtype=np.int64)
    skey = day.pair_node * n_skus + day.line_sku[day.pair_line]

    def take(p: int, units: int) -> int:
        li, s = int(day.pair_line[p]), int(ship_of[p])
        units = min(units, int(left[skey[p]]), int(day.line_qty[li] - served[li]))
        if units <= 0 or (x[p] == 0 and parts[li] >= day.line_max_parts[li]):
            return 0
        if not opened[s]:
            node, order = int(ship_key[s] % n_nodes), int(ship_key[s] // n_nodes)
            if cap[node] == 0 or order_cap[order] == 0:
                return 0
            if cap[node] != UNLIMITED:
                cap[node] -= 1
            if order_cap[order] != UNLIMITED:
                order_cap[order] -= 1
            opened[s] = True
        if x[p] == 0:
            parts[li] += 1
        x[p] += units
        left[skey[p]] -= units
        served[li] += units
        return units

    whole = np.floor(np.asarray(plan) + 1e-6).astype(np.int64)
    for p in np.argsort(-np.asarray(plan), kind="stable"):
        if whole[p] > 0:
            take(int(p), int(whole[p]))
    unit_price = day.pair_unit_cost + day.pair_part_cost
    for p in np.lexsort((unit_price + day.pair_ship_cost, day.pair_line)):
        li = int(day.pair_line[p])
        if served[li] < day.line_qty[li]:
            take(int(p), int(day.line_qty[li] - served[li]))
    return x
