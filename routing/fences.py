"""Fences: hard rules that remove a (line, node) candidate, each with a reason code.

Node-level fences (enabled, excluded, pickup, calendar, channel, capacity) are evaluated
once per node per order; line-level fences (group, distance, stock, safety stock) per pair.
The first fence that fails is the one reported, in the order of ``FENCE_ORDER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from routing.domain import Network, Node, Order, OrderLine, StockRow
from routing.geo import haversine_km
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


@dataclass(slots=True)
class LineCandidates:
    index: int
    line: OrderLine
    rules: GroupRules
    splittable: bool
    partial_ok: bool
    candidates: list[Candidate]
    _eligible: list[Candidate] | None = field(default=None, init=False, repr=False, compare=False)

    def eligible(self) -> list[Candidate]:
        """The candidates no fence removed, in node-id order; made once (every stage of a
        decision reads them): the list is shared, do not change it."""
        if self._eligible is None:
            self._eligible = [c for c in self.candidates if c.fence is None]
        return self._eligible


def _node_fence(
    node: Node, order: Order, policy: Policy, now: datetime, allowed: frozenset[str] | None
) -> tuple[str, str] | None:
    if not node.enabled:
        return DISABLED, f"{node.node_id} is disabled"
    if node.node_id in order.excluded_nodes:
        return EXCLUDED, f"{node.node_id} already rejected this order"
    if order.pickup_node_id is not None and node.node_id != order.pickup_node_id:
        return PICKUP_ONLY, f"pickup order: only {order.pickup_node_id} may serve it"
    if node.calendar is not None:
        why = node.calendar.status(now, node.timezone, require_open_now=policy.require_open_now)
        if why is not None:
            return CLOSED, f"{node.node_id} is closed: {why}"
    if allowed is not None and node.node_type not in allowed:
        return CHANNEL, (
            f"channel {order.channel!r} may use {', '.join(sorted(allowed))}, not {node.node_type}"
        )
    if policy.capacity == "fence" and node.at_capacity:
        return CAPACITY, (
            f"{node.node_id} took {node.orders_today} of {node.daily_capacity} orders today"
        )
    return None


def node_distances(nodes: Mapping[str, Node], order: Order) -> dict[str, float | None]:
    """Great-circle km from each node to the destination, in one vectorised call;
    0 for the pickup store; None when either end has no coordinates."""
    out: dict[str, float | None] = dict.fromkeys(nodes)
    located = [(n.node_id, n.lat, n.lon) for n in nodes.values()]
    located = [(i, lat, lon) for i, lat, lon in located if lat is not None and lon is not None]
    if order.dest_lat is not None and order.dest_lon is not None and located:
        ids, lats, lons = zip(*located, strict=True)
        km = haversine_km(lats, lons, order.dest_lat, order.dest_lon)
        out.update(zip(ids, km.tolist(), strict=True))
    if order.pickup_node_id in out:
        out[order.pickup_node_id] = 0.0
    return out


def line_splittable(line: OrderLine, rules: GroupRules, policy: Policy, channel: str) -> bool:
    return (
        policy.allow_line_split
        and not policy.channel(channel).never_split
        and not rules.never_split
        and not rules.ship_together
        and not policy.sku_never_splits(line.sku)
    )


def evaluate(order: Order, network: Network, policy: Policy, now: datetime) -> list[LineCandidates]:
    """Every stocked node for every line, fenced or not, in node-id order."""
    allowed = policy.allowed_types(order.channel)
    partial_ok = order.partial_ok(policy.allow_partial)
    rows_by_line = [network.stock_for(line.sku) for line in order.lines]
    nodes = {r.node_id: network.nodes[r.node_id] for rows in rows_by_line for r in rows}
    distances = node_distances(nodes, order)
    #: per node: the node, its node-level fence and its distance, once per order
    info = {
        nid: (node, _node_fence(node, order, policy, now, allowed), distances[nid])
        for nid, node in nodes.items()
    }
    smap = policy.safety_map()
    out: list[LineCandidates] = []
    for i, line in enumerate(order.lines):
        rules = policy.rules(line.product_group)
        splittable = line_splittable(line, rules, policy, order.channel)
        group, max_km, qty = line.product_group, rules.max_distance_km, line.qty
        may_fall_short = splittable or partial_ok
        cands: list[Candidate] = []
        for row in rows_by_line[i]:
            node, fence, dist = info[row.node_id]
            safety = rules.safety_stock
            if smap:
                safety = smap.get((node.node_id, group), smap.get((node.node_id, None), safety))
            atp = max(row.available - safety, 0.0) if row.in_stock else 0.0
            c = Candidate(node, row, dist, atp)
            if fence is not None:
                c.fence, c.reason = fence
            elif (
                group is not None
                and node.ships_groups is not None
                and group not in node.ships_groups
            ):
                c.fence, c.reason = GROUP, f"{node.node_id} does not ship {group}"
            elif max_km is not None and dist is not None and dist > max_km:
                c.fence, c.reason = (
                    DISTANCE,
                    (f"{dist:.0f} km away; the policy allows {max_km:.0f} km"),
                )
            elif not row.in_stock or row.available <= 0:
                c.fence, c.reason = OUT_OF_STOCK, f"{node.node_id} has no {line.sku} available"
            elif atp <= 0:
                c.fence, c.reason = (
                    SAFETY_STOCK,
                    (f"{row.available:g} on hand is within the safety stock of {safety:g}"),
                )
            elif atp < qty and not may_fall_short:
                c.fence, c.reason = (
                    INSUFFICIENT,
                    (f"{atp:g} available to promise, {qty:g} needed and the line may not split"),
                )
            cands.append(c)
        out.append(LineCandidates(i, line, rules, splittable, partial_ok, cands))
    return out


def candidate_pairs(
    order: Order, network: Network, policy: Policy | None, now: datetime
) -> list[tuple[str, str]]:
    """(line_id, node_id) pairs that pass every fence: the pairs the server must predict for."""
    pol = policy or Policy.default()
    return [
        (lc.line.line_id, c.node.node_id)
        for lc in evaluate(order, network, pol, now)
        for c in lc.candidates
        if c.fence is None
    ]
