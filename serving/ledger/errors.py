"""Ledger failures as typed errors; each maps to one RFC 9457 problem so callers know what to do next.

They subclass the serving ``RoutecastError`` so the app's single exception handler turns
them into ``application/problem+json`` without per-endpoint code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from serving.problems import RoutecastError


@dataclass(frozen=True, slots=True)
class Shortage:
    """One node×SKU that could not cover an order: what was needed and what was left."""

    node_id: str
    sku: str
    needed: int
    available: int


class LedgerError(RoutecastError):
    """Base of every ledger failure."""

    status, type, title = 500, "ledger-error", "Inventory ledger error"


class InsufficientStock(LedgerError):
    """Not enough available stock for at least one node×SKU; nothing was reserved."""

    status, type, title = 409, "insufficient-stock", "Insufficient stock"

    def __init__(self, missing: Sequence[Shortage]) -> None:
        self.missing = list(missing)
        names = ", ".join(
            f"{m.sku}@{m.node_id} needs {m.needed}, {m.available} available" for m in self.missing
        )
        super().__init__(
            f"not enough stock: {names}; nothing was reserved, route again",
            missing=[asdict(m) for m in self.missing],
        )


class IdempotencyMismatch(LedgerError):
    """The key was already used for a different request body."""

    status, type, title = (
        422,
        "idempotency-key-reused",
        "Idempotency key reused with another request",
    )

    def __init__(self, key: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for a different request; use a new key",
            idempotency_key=key,
        )


class IdempotencyInFlight(LedgerError):
    """The same request is still being processed; the client should retry later."""

    status, type, title = 409, "idempotency-in-flight", "Request with this key is in progress"
    retry_after = 1

    def __init__(self, key: str) -> None:
        super().__init__(
            f"a request with idempotency key {key!r} is still in progress; retry shortly",
            idempotency_key=key,
        )


class OrderExists(LedgerError):
    """An order id was placed before with a different request."""

    status, type, title = 409, "order-exists", "Order already exists"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id!r} already exists with a different request; use a new order id",
            order_id=order_id,
        )


class OrderNotFound(LedgerError):
    status, type, title = 404, "order-not-found", "Order not found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"order {order_id!r} is unknown", order_id=order_id)


class OrderStateError(LedgerError):
    """The order's status does not allow the operation (e.g. cancelling a shipped order)."""

    status, type, title = 409, "order-state", "Operation not allowed in the order's state"

    def __init__(self, order_id: str, status: str, operation: str) -> None:
        super().__init__(
            f"cannot {operation} order {order_id!r} while it is {status}",
            order_id=order_id,
            order_status=status,
        )


class AllocationNotFound(LedgerError):
    """No reserved allocation matches the order, node and lines given."""

    status, type, title = 404, "allocation-not-found", "Allocation not found"

    def __init__(self, order_id: str, node_id: str, line_ids: Sequence[str]) -> None:
        super().__init__(
            f"order {order_id!r} has no reserved allocation at node {node_id!r} "
            f"for lines {sorted(line_ids)}",
            order_id=order_id,
            node_id=node_id,
            line_ids=sorted(line_ids),
        )


class UnknownNode(LedgerError):
    status, type, title = 422, "unknown-node", "Unknown node"

    def __init__(self, node_ids: Sequence[str]) -> None:
        ids = sorted(set(node_ids))
        super().__init__(f"unknown node(s) {ids}; register them first", node_ids=ids)


class InvalidLedgerRequest(LedgerError):
    """A request the ledger refuses before touching stock (non-positive qty, bad reason, ...)."""

    status, type, title = 422, "invalid-ledger-request", "Invalid inventory request"


class LedgerBusy(LedgerError):
    """The store stayed locked or kept aborting the transaction; safe to retry."""

    status, type, title = 503, "ledger-busy", "Inventory ledger is busy"
    retry_after = 1


class CapacityReached(LedgerError):
    """A node already took its daily capacity of orders (counted in the reservation)."""

    status, type, title = 409, "capacity-reached", "Node is at its daily capacity"

    def __init__(self, node_id: str, capacity: int) -> None:
        super().__init__(
            f"node {node_id!r} already took its {capacity} orders today; nothing was "
            "reserved, route again",
            node_id=node_id,
            daily_capacity=capacity,
        )


class ShipmentNotFound(LedgerError):
    """A delivery names no shipment of the order (wrong id or tracking number, or not shipped)."""

    status, type, title = 422, "shipment-not-found", "Shipment not found"

    def __init__(self, order_id: str, field: str, detail: str) -> None:
        super().__init__(
            f"{field}: {detail} for order {order_id!r}; "
            "name a shipment_id or tracking_number from the order's shipments",
            order_id=order_id,
            field=field,
        )


class DeliveryConflict(LedgerError):
    """A delivery disagrees with what the ledger knows (another carrier or tracking number,
    delivered before it shipped, or an event id reused with other content)."""

    status, type, title = 422, "delivery-conflict", "Delivery disagrees with the shipment"

    def __init__(self, field: str, detail: str, **extra: object) -> None:
        super().__init__(f"{field}: {detail}", field=field, **extra)


class LineAlreadyShipped(LedgerError):
    """The line (or the asked quantity of it) already left a node: it can only be returned."""

    status, type, title = 409, "line-shipped", "Line already shipped"

    def __init__(self, order_id: str, line_id: str, detail: str) -> None:
        super().__init__(
            f"order {order_id!r} line {line_id!r}: {detail}; shipped units cannot be cancelled "
            "or re-routed, create a return (POST /v1/orders/{id}/returns) instead",
            order_id=order_id,
            line_id=line_id,
            field="line_id",
        )


class CancelQtyTooLarge(LedgerError):
    status, type, title = 422, "cancel-qty-too-large", "More units than are still open"

    def __init__(self, line_id: str, qty: int, open_qty: int) -> None:
        super().__init__(
            f"line {line_id!r} has {open_qty} unit(s) not yet shipped; cannot cancel {qty}",
            field="qty",
            open_qty=open_qty,
        )


class OrderChanged(LedgerError):
    """The order's reservations changed while it was being re-routed: nothing was moved."""

    status, type, title = 409, "order-changed", "Order changed meanwhile"

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"order {order_id!r} changed while it was being re-routed (a line shipped, was "
            "rejected or cancelled); nothing was moved, send the request again",
            order_id=order_id,
        )


class ReturnNotFound(LedgerError):
    status, type, title = 404, "return-not-found", "Return not found"

    def __init__(self, return_id: str) -> None:
        super().__init__(f"no return {return_id!r}", return_id=return_id)


class InvalidReturn(LedgerError):
    """A return or receipt names a line or quantity the order cannot give back."""

    status, type, title = 422, "invalid-return", "Return does not match what shipped"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, field=field)
