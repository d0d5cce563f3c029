"""What a node's rejection teaches, as pure rules the ledger applies inside its transaction.

``not_in_stock``: the node has none left beyond what other orders hold (available → 0);
``damaged``: the rejected units are gone (never more than is free); ``capacity``: no stock
change, the node closes until its local midnight. After ``max_rejections`` the order stops
being rerouted and becomes an exception for a person to handle.
"""

from __future__ import annotations

from routing.domain import RejectReason


def stock_to_drop(reason: RejectReason | str, *, available: int, rejected_qty: int) -> int:
    """Units to write off ``on_hand`` at the rejecting node for one SKU."""
    if reason == RejectReason.NOT_IN_STOCK:
        return available
    if reason == RejectReason.DAMAGED:
        return min(rejected_qty, available)
    return 0


def closes_node(reason: RejectReason | str) -> bool:
    """Whether the node stops taking orders for the rest of its local day."""
    return reason == RejectReason.CAPACITY


def becomes_exception(rejections: int, max_rejections: int) -> bool:
    """Whether the order has been refused often enough to stop rerouting it."""
    return rejections >= max_rejections
