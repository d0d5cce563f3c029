"""Builders for small in-memory networks and orders used by the routing tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from routing import Network, Order, OrderLine, network_from_dict

NOW = datetime(2024, 5, 8, 15, 0, tzinfo=UTC)  # a Wednesday


def net(
    nodes: list[dict[str, Any]], stock: list[tuple[str, str, float] | tuple[str, str, float, bool]]
) -> Network:
    rows = [
        {"node": s[0], "sku": s[1], "qty": s[2], "in_stock": s[3] if len(s) > 3 else True}
        for s in stock
    ]
    return network_from_dict({"nodes": nodes, "stock": rows})


def order(*lines: tuple[str, float], **kw: Any) -> Order:
    return Order(
        order_id=kw.pop("order_id", "T-1"),
        channel=kw.pop("channel", "web"),
        dest_lat=kw.pop("dest_lat", None),
        dest_lon=kw.pop("dest_lon", None),
        lines=tuple(
            OrderLine(str(i + 1), sku, qty, **kw.pop(f"line{i + 1}", {}))
            for i, (sku, qty) in enumerate(lines)
        ),
        **kw,
    )
