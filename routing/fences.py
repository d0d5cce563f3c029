"""Fences: hard rules that remove a (line, node) candidate, each with a reason code.

Node-level fences (enabled, excluded, pickup, calendar, channel, capacity) are evaluated
once per node per order; line-level fences (group, distance, stock, safety stock) per line
as array masks over the SKU's stock rows. The first fence that fails is the one reported,
in the order of ``FENCE_ORDER``. Nodes are read as columns (:class:`NodeColumns`, made once
per ``NodeSet``), a line's candidates as arrays (:class:`LineCandidates`); a ``Candidate``
object and its reason text are made only for a pair someone asks about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import numpy as np

from routing.domain import Network, Node, NodeSet, Order, OrderLine, SkuStock, StockRow
from routing.geo import FloatArray, haversine_km
from routing.policy import GroupRules, Policy

DISABLED = "NODE_DISABLED"
EXCLUDED = "NODE_EXCLUDED"
PICKUP_ONLY = "PICKUP_ONLY"
CLOSED = "NODE_CLOSED"
CHANNEL = "CHANNEL_NOT_ALLOWED"
CAPACITY = "AT_CAPACITY"
GROUP = "GROUP_NOT_SHIPPED"
DISTANCE = "TOO_FAR"
OUT_OF_STOCK = "OUT_OF_STOCK"
SAFETY_STOCK = "SAFETY_STOCK"
INSUFFICIENT = "INSUFFICIENT_STOCK"

FENCE_ORDER = (
    DISABLED,
    EXCLUDED,
    PICKUP_ONLY,
    CLOSED,
    CHANNEL,
    CAPACITY,
    GROUP,
    DISTANCE,
    OUT_OF_STOCK,
    SAFETY_STOCK,
    INSUFFICIENT,
)
#: a fence's code in the code arrays: its index in ``FENCE_ORDER``; no fence is -1
CODE: Final = {name: k for k, name in enumerate(FENCE_ORDER)}
NO_FENCE: Final = -1
_EMPTY = SkuStock([], [])


class NodeColumns:
    """A node set's attributes as arrays (``NodeSet.derived``: made once per node set)."""

    __slots__ = (
        "at_capacity",
        "calendared",
        "enabled",
        "handling",
        "has_calendar",
        "ids",
        "lat",
        "load",
        "located",
        "lon",
        "nodes",
        "pos",
        "types",
    )

    def __init__(self, nodes: NodeSet) -> None:
        ns = list(nodes.values())
        self.nodes = ns
        self.ids = [n.node_id for n in ns]
        self.pos = {nid: k for k, nid in enumerate(self.ids)}
        self.types = [n.node_type for n in ns]
        self.enabled = np.array([n.enabled for n in ns], dtype=bool)
        self.at_capacity = np.array([n.at_capacity for n in ns], dtype=bool)
        self.has_calendar = np.array([n.calendar is not None for n in ns], dtype=bool)
        self.calendared = np.flatnonzero(self.has_calendar).tolist()
        self.handling = np.array([n.handling_cost for n in ns], dtype=np.float64)
        loads = [n.load for n in ns]
        self.load = np.array([math.nan if x is None else x for x in loads], dtype=np.float64)
        self.located = np.array([n.lat is not None and n.lon is not None for n in ns], bool)
        self.lat = np.array([n.lat if n.lat is not None else 0.0 for n in ns], np.float64)
        self.lon = np.array([n.lon if n.lon is not None else 0.0 for n in ns], np.float64)

    def rows(self, stock: SkuStock) -> np.ndarray:
        """Node index of each of ``stock``'s rows; remembered on the stock columns for the
        last node set they met (a cached SKU meets the same node set order after order)."""
        at = stock._at
        if at is None or at[0] is not self:
            idx = np.fromiter(map(self.pos.__getitem__, stock.node_ids), np.intp, len(stock))
            at = stock._at = (self, idx)
        return at[1]


def columns(nodes: NodeSet) -> NodeColumns:
    return nodes.derived("fences.columns", NodeColumns)


def _groups_barred(nodes: NodeSet, group: str) -> np.ndarray:
    return nodes.derived(
        f"fences.group:{group}",
        lambda ns: np.array(
            [n.ships_groups is not None and group not in n.ships_groups for n in ns.values()],
            dtype=bool,
        ),
    )


def _static_codes(nodes: NodeSet, allowed: frozenset[str] | None, cap_fence: bool) -> np.ndarray:
    """The node fences that depend on the node set and the policy only (disabled, channel,
    capacity), first failing wins; -1 where none fails. Read-only, shared."""

    def make(ns: NodeSet) -> np.ndarray:
        cols = columns(ns)
        barred = np.array(
            [allowed is not None and t not in allowed for t in cols.types], dtype=bool
        )
        cap = cols.at_capacity if cap_fence else np.zeros(len(cols.ids), dtype=bool)
        out = np.select(
            [~cols.enabled, barred, cap], [CODE[DISABLED], CODE[CHANNEL], CODE[CAPACITY]], NO_FENCE
        ).astype(np.int8)
        out.setflags(write=False)
        return out

    key = f"fences.static:{cap_fence}:{None if allowed is None else sorted(allowed)}"
    return nodes.derived(key, make)


def _distances(cols: NodeColumns, order: Order, wanted: np.ndarray | None = None) -> FloatArray:
    """Great-circle km from every node (``wanted``: from those only) to the destination
    (NaN: unknown, either end has no coordinates), 0 for the pickup store: the one distance
    rule of the fences and ratings."""
    km = np.full(len(cols.ids), math.nan)
    at = np.flatnonzero(cols.located if wanted is None else cols.located & wanted)
    if order.dest_lat is not None and order.dest_lon is not None and len(at):
        km[at] = haversine_km(cols.lat[at], cols.lon[at], order.dest_lat, order.dest_lon)
    pickup = cols.pos.get(order.pickup_node_id) if order.pickup_node_id is not None else None
    if pickup is not None:
        km[pickup] = 0.0
    return km


def node_distances(nodes: Mapping[str, Node], order: Order) -> dict[str, float | None]:
    """Great-circle km from each node to the destination, in one vectorised call;
    0 for the pickup store; None when either end has no coordinates."""
    ns = nodes if isinstance(nodes, NodeSet) else NodeSet(nodes.values())
    cols = columns(ns)
    return dict(zip(cols.ids, _as_optional(_distances(cols, order)), strict=True))


def _as_optional(km: FloatArray) -> list[float | None]:
    return [None if math.isnan(x) else x for x in km.tolist()]


def line_splittable(line: OrderLine, rules: GroupRules, policy: Policy, channel: str) -> bool:
    return (
        policy.allow_line_split
        and not policy.channel(channel).never_split
        and not rules.never_split
        and not rules.ship_together
        and not policy.sku_never_splits(line.sku)
    )


@dataclass(slots=True)
class Candidate:
    """One node for one line: its distance, what it can promise, and the fence if any."""

    node: Node
    row: StockRow
    distance_km: float | None
    atp: float
    fence: str | None = None
    reason: str | None = None

    @property
    def eligible(self) -> bool:
        return self.fence is None


@dataclass(frozen=True, slots=True)
class _OrderFences:
    """What the node fences of one order found, shared by its lines (for reason texts)."""

    order: Order
    allowed: frozenset[str] | None
    closed: dict[int, str]  # node index -> the calendar's reason


class LineCandidates:
    """One line's stocked nodes (the SKU's stock rows, node-id order) as arrays: each row's
    node, distance, ATP and fence code; the eligible rows (no fence) in ``eligible_pos``.
    ``Candidate`` objects (``candidates``, ``eligible()``) are made on first use only."""

    __slots__ = (
        "_candidates",
        "_eligible",
        "_eligible_ids",
        "_of",
        "_rows",
        "atp",
        "code",
        "cols",
        "distance",
        "eligible_atp",
        "eligible_nodes",
        "eligible_pos",
        "index",
        "line",
        "node_index",
        "partial_ok",
        "rules",
        "safety",
        "splittable",
        "stock",
    )

    def __init__(
        self,
        index: int,
        line: OrderLine,
        rules: GroupRules,
        splittable: bool,
        partial_ok: bool,
        *,
        stock: SkuStock,
        cols: NodeColumns,
        node_index: np.ndarray,
        distance: FloatArray,
        atp: FloatArray,
        safety: FloatArray,
        code: np.ndarray,
        of: _OrderFences,
        rows: Network,
    ) -> None:
        self.index, self.line, self.rules = index, line, rules
        self.splittable, self.partial_ok = splittable, partial_ok
        self.stock, self.cols, self.node_index = stock, cols, node_index
        self.distance, self.atp, self.safety, self.code = distance, atp, safety, code
        self._of, self._rows = of, rows
        #: positions of the eligible rows in ``stock`` (ascending: node-id order)
        self.eligible_pos = np.flatnonzero(code < 0)
        self.eligible_nodes = node_index[self.eligible_pos]
        self.eligible_atp = atp[self.eligible_pos]
        self._eligible_ids: list[str] | None = None
        self._candidates: list[Candidate] | None = None
        self._eligible: list[Candidate] | None = None

    @property
    def eligible_ids(self) -> list[str]:
        """Node ids of the eligible rows, in node-id order (shared: do not change it)."""
        if self._eligible_ids is None:
            ids = self.stock.node_ids
            self._eligible_ids = [ids[k] for k in self.eligible_pos.tolist()]
        return self._eligible_ids

    def fence(self, k: int) -> str | None:
        c = int(self.code[k])
        return None if c < 0 else FENCE_ORDER[c]

    def reason(self, k: int) -> str | None:
        """Why row ``k`` is fenced, in words (``None`` when it is not)."""
        c = int(self.code[k])
        if c < 0:
            return None
        fence = FENCE_ORDER[c]
        node = self.cols.nodes[int(self.node_index[k])]
        order = self._of.order
        if fence == DISABLED:
            return f"{node.node_id} is disabled"
        if fence == EXCLUDED:
            return f"{node.node_id} already rejected this order"
        if fence == PICKUP_ONLY:
            return f"pickup order: only {order.pickup_node_id} may serve it"
        if fence == CLOSED:
            return f"{node.node_id} is closed: {self._of.closed[int(self.node_index[k])]}"
        if fence == CHANNEL:
            allowed = self._of.allowed or frozenset()
            return (
                f"channel {order.channel!r} may use {', '.join(sorted(allowed))}, "
                f"not {node.node_type}"
            )
        if fence == CAPACITY:
            return f"{node.node_id} took {node.orders_today} of {node.daily_capacity} orders today"
        if fence == GROUP:
            return f"{node.node_id} does not ship {self.line.product_group}"
        if fence == DISTANCE:
            max_km = self.rules.max_distance_km
            return f"{float(self.distance[k]):.0f} km away; the policy allows {max_km:.0f} km"
        if fence == OUT_OF_STOCK:
            return f"{node.node_id} has no {self.line.sku} available"
        available = float(self.stock.available[k])
        if fence == SAFETY_STOCK:
            safety = float(self.safety[k])
            return f"{available:g} on hand is within the safety stock of {safety:g}"
        atp, qty = float(self.atp[k]), self.line.qty
        return f"{atp:g} available to promise, {qty:g} needed and the line may not split"

    @property
    def candidates(self) -> list[Candidate]:
        """Every stocked node as a ``Candidate``, fenced or not (made once; shared)."""
        if self._candidates is None:
            rows = self._rows.stock_for(self.line.sku)
            nodes = self.cols.nodes
            out = []
            for k, (n, d, a) in enumerate(
                zip(
                    self.node_index.tolist(),
                    _as_optional(self.distance),
                    self.atp.tolist(),
                    strict=True,
                )
            ):
                out.append(Candidate(nodes[n], rows[k], d, a, self.fence(k), self.reason(k)))
            self._candidates = out
        return self._candidates

    def eligible(self) -> list[Candidate]:
        """The candidates no fence removed, in node-id order; made once: the list is
        shared, do not change it. The hot path reads the ``eligible_*`` arrays instead."""
        if self._eligible is None:
            self._eligible = [c for c in self.candidates if c.fence is None]
        return self._eligible


def _node_codes(
    nodes: NodeSet, order: Order, policy: Policy, now: datetime, wanted: np.ndarray
) -> tuple[np.ndarray, _OrderFences]:
    """Every node's first failing node fence for this order (-1: none); the calendar is
    asked only for the ``wanted`` nodes no earlier fence removed."""
    cols = columns(nodes)
    allowed = policy.allowed_types(order.channel)
    codes = _static_codes(nodes, allowed, policy.capacity == "fence").copy()
    pos = cols.pos
    for nid in order.excluded_nodes:
        k = pos.get(nid)
        if k is not None and codes[k] != CODE[DISABLED]:
            codes[k] = CODE[EXCLUDED]
    if order.pickup_node_id is not None:
        other = np.ones(len(codes), dtype=bool)
        k = pos.get(order.pickup_node_id)
        if k is not None:
            other[k] = False
        codes[other & ((codes < 0) | (codes > CODE[PICKUP_ONLY]))] = CODE[PICKUP_ONLY]
    closed: dict[int, str] = {}
    for k in cols.calendared:
        if not wanted[k] or 0 <= codes[k] < CODE[CLOSED]:
            continue
        node = cols.nodes[k]
        assert node.calendar is not None
        why = node.calendar.status(now, node.timezone, require_open_now=policy.require_open_now)
        if why is not None:
            closed[k] = why
            codes[k] = CODE[CLOSED]
    return codes, _OrderFences(order, allowed, closed)


def _mark(code: np.ndarray, free: np.ndarray, fails: np.ndarray, fence: str) -> None:
    """Give ``fence`` to the rows that fail it and no earlier fence removed (in place)."""
    hit = free & fails
    if hit.any():
        code[hit] = CODE[fence]
        free &= ~hit


def evaluate(order: Order, network: Network, policy: Policy, now: datetime) -> list[LineCandidates]:
    """Every stocked node for every line, fenced or not, in node-id order."""
    nodes = network.nodes
    cols = columns(nodes)
    partial_ok = order.partial_ok(policy.allow_partial)
    stocks = [network.stock(line.sku) or _EMPTY for line in order.lines]
    rows_at = [cols.rows(st) for st in stocks]
    wanted = np.zeros(len(cols.ids), dtype=bool)
    for idx in rows_at:
        wanted[idx] = True
    node_code, of = _node_codes(nodes, order, policy, now, wanted)
    km = _distances(cols, order, wanted)
    out: list[LineCandidates] = []
    for i, line in enumerate(order.lines):
        st, idx = stocks[i], rows_at[i]
        rules = policy.rules(line.product_group)
        splittable = line_splittable(line, rules, policy, order.channel)
        group, max_km, qty = line.product_group, rules.max_distance_km, line.qty
        dist = km[idx]
        if policy.safety_map():
            safety = np.array(
                [policy.safety_stock_for(n, group) for n in st.node_ids], dtype=np.float64
            )
        else:
            safety = np.full(len(st), rules.safety_stock)
        short = st.available - safety
        atp = np.where(st.in_stock, np.where(short < 0.0, 0.0, short), 0.0)
        # the first failing fence wins: later fences only mark rows no earlier one did
        code = node_code[idx]
        free = code < 0
        if group is not None:
            _mark(code, free, _groups_barred(nodes, group)[idx], GROUP)
        if max_km is not None:
            _mark(code, free, dist > max_km, DISTANCE)  # NaN (unknown) is never too far
        _mark(code, free, ~st.in_stock | (st.available <= 0), OUT_OF_STOCK)
        _mark(code, free, atp <= 0, SAFETY_STOCK)
        if not (splittable or partial_ok):
            _mark(code, free, atp < qty, INSUFFICIENT)
        out.append(
            LineCandidates(
                i,
                line,
                rules,
                splittable,
                partial_ok,
                stock=st,
                cols=cols,
                node_index=idx,
                distance=dist,
                atp=atp,
                safety=safety,
                code=code,
                of=of,
                rows=network,
            )
        )
    return out


def candidate_pairs(
    order: Order, network: Network, policy: Policy | None, now: datetime
) -> list[tuple[str, str]]:
    """(line_id, node_id) pairs that pass every fence: the pairs the server must predict for."""
    pol = policy or Policy.default()
    return [
        (lc.line.line_id, nid)
        for lc in evaluate(order, network, pol, now)
        for nid in lc.eligible_ids
    ]
