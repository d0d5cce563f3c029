"""Standalone document formats (NETWORK.json, ORDER.json): pure parsing, no file reading.

The CLI reads the files; these functions turn the parsed JSON into domain objects and
raise ``InvalidNetwork`` / ``InvalidOrder`` naming the offending entry. docs/formats.md is
the reference for every field.
"""

from __future__ import annotations

import math
from typing import Any

from routing.calendar import calendar_from_dict, zone
from routing.domain import NODE_TYPES, Channel, Network, Node, Order, OrderLine, StockRow
from routing.errors import InvalidNetwork, InvalidOrder


def _num(v: Any, where: str, err: type[ValueError], *, allow_none: bool = False) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise err(f"{where} must be a finite number, got {v!r}")
    return float(v)


def _groups(v: Any, where: str) -> frozenset[str] | None:
    """List or comma-separated text; absent or empty means every group."""
    if v is None:
        return None
    items = v.split(",") if isinstance(v, str) else v
    if not isinstance(items, list) or not all(isinstance(g, str) for g in items):
        raise InvalidNetwork(f"{where} must be a list of product groups")
    groups = frozenset(g.strip() for g in items if g.strip())
    return groups or None


def _node(d: Any, i: int) -> Node:
    where = f"nodes[{i}]"
    if not isinstance(d, dict):
        raise InvalidNetwork(f"{where} must be an object")
    node_id = d.get("id", d.get("node_id"))
    if not isinstance(node_id, str) or not node_id:
        raise InvalidNetwork(f"{where}.id must be a non-empty string")
    node_type = d.get("type", d.get("node_type", "dc"))
    if node_type not in NODE_TYPES:
        raise InvalidNetwork(
            f"{where}.type must be one of {', '.join(NODE_TYPES)}, got {node_type!r}"
        )
    lat = _num(d.get("lat"), f"{where}.lat", InvalidNetwork, allow_none=True)
    lon = _num(d.get("lon"), f"{where}.lon", InvalidNetwork, allow_none=True)
    if (lat is None) != (lon is None):
        raise InvalidNetwork(f"{where}: give both lat and lon, or neither")
    if lat is not None and lon is not None and not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidNetwork(f"{where}: lat/lon out of range")
    tz = str(d.get("timezone") or "UTC")
    try:
        zone(tz)
    except ValueError as exc:
        raise InvalidNetwork(f"{where}.timezone: {exc}") from None
    cap = d.get("daily_capacity")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
        raise InvalidNetwork(f"{where}.daily_capacity must be a non-negative integer or null")
    counts = {}
    for name in ("orders_today", "backlog"):
        v = d.get(name, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidNetwork(f"{where}.{name} must be a non-negative integer")
        counts[name] = v
    priority = d.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidNetwork(f"{where}.priority must be an integer")
    calendar = None
    if d.get("calendar") is not None:
        if not isinstance(d["calendar"], dict):
            raise InvalidNetwork(f"{where}.calendar must be an object")
        try:
            calendar = calendar_from_dict(d["calendar"])
        except ValueError as exc:
            raise InvalidNetwork(f"{where}.calendar: {exc}") from None
    return Node(
        node_id=node_id,
        node_type=node_type,
        lat=lat,
        lon=lon,
        enabled=bool(d.get("enabled", True)),
        priority=priority,
        ships_groups=_groups(d.get("ships_groups"), f"{where}.ships_groups"),
        handling_cost=_num(d.get("handling_cost", 0.0), f"{where}.handling_cost", InvalidNetwork)
        or 0.0,
        timezone=tz,
        daily_capacity=cap,
        orders_today=counts["orders_today"],
        backlog=counts["backlog"],
        calendar=calendar,
        name=str(d.get("name") or ""),
        region=d.get("region"),
    )


def network_from_dict(doc: dict[str, Any]) -> Network:
    """NETWORK.json -> ``Network`` (build once, reuse for many orders)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise InvalidNetwork("a network needs a 'nodes' list")
    nodes = [_node(d, i) for i, d in enumerate(doc["nodes"])]
    rows: list[StockRow] = []
    stock = doc.get("stock") or []
    if not isinstance(stock, list):
        raise InvalidNetwork("'stock' must be a list")
    for i, s in enumerate(stock):
        where = f"stock[{i}]"
        if not isinstance(s, dict):
            raise InvalidNetwork(f"{where} must be an object")
        node, sku = s.get("node", s.get("node_id")), s.get("sku")
        if not isinstance(node, str) or not isinstance(sku, str) or not sku:
            raise InvalidNetwork(f"{where} needs string 'node' and 'sku'")
        qty = _num(s.get("qty", s.get("available")), f"{where}.qty", InvalidNetwork) or 0.0
        rows.append(StockRow(node, sku, qty, bool(s.get("in_stock", True))))
    try:
        return Network(nodes, rows)
    except ValueError as exc:
        raise InvalidNetwork(str(exc)) from None


def order_from_dict(doc: dict[str, Any]) -> Order:
    """ORDER.json (the API's order contract) -> ``Order``; lat/lon may be absent."""
    if not isinstance(doc, dict):
        raise InvalidOrder("an order must be an object")
    order_id = doc.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise InvalidOrder("order_id must be a non-empty string")
    dest = doc.get("destination") or {}
    if not isinstance(dest, dict):
        raise InvalidOrder("destination must be an object")
    lat = _num(dest.get("lat"), "destination.lat", InvalidOrder, allow_none=True)
    lon = _num(dest.get("lon"), "destination.lon", InvalidOrder, allow_none=True)
    if (lat is None) != (lon is None):
        raise InvalidOrder("destination: give both lat and lon, or neither")
    raw_lines = doc.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise InvalidOrder("lines must be a non-empty list")
    lines = []
    for i, ln in enumerate(raw_lines):
        where = f"lines[{i}]"
        if not isinstance(ln, dict):
            raise InvalidOrder(f"{where} must be an object")
        sku = ln.get("sku")
        if not isinstance(sku, str) or not sku:
            raise InvalidOrder(f"{where}.sku must be a non-empty string")
        qty = _num(ln.get("qty"), f"{where}.qty", InvalidOrder)
        if qty is None or qty <= 0:
            raise InvalidOrder(f"{where}.qty must be > 0")
        lines.append(
            OrderLine(
                line_id=str(ln.get("line_id", i + 1)),
                sku=sku,
                qty=qty,
                product_group=ln.get("product_group"),
                weight_kg=_num(ln.get("weight_kg", 1.0), f"{where}.weight_kg", InvalidOrder) or 0.0,
                unit_price=_num(ln.get("unit_price", 0.0), f"{where}.unit_price", InvalidOrder)
                or 0.0,
            )
        )
    promise = _num(doc.get("promise_days"), "promise_days", InvalidOrder, allow_none=True)
    excluded = doc.get("excluded_nodes") or []
    if not isinstance(excluded, list):
        raise InvalidOrder("excluded_nodes must be a list of node ids")
    try:
        return Order(
            order_id=order_id,
            channel=str(doc.get("channel") or Channel.WEB.value),
            dest_lat=lat,
            dest_lon=lon,
            lines=tuple(lines),
            dest_region=dest.get("region"),
            pickup_node_id=doc.get("pickup_node_id"),
            allow_partial=bool(doc.get("allow_partial", False)),
            promise_days=promise,
            excluded_nodes=frozenset(str(x) for x in excluded),
        )
    except ValueError as exc:
        raise InvalidOrder(str(exc)) from None
