"""Typed values the ledger takes and returns, so callers never handle raw rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from routing.domain import RejectReason

OrderStatus = Literal["placed", "held", "partially_shipped", "shipped", "cancelled", "exception"]
AllocationStatus = Literal["reserved", "shipped", "released", "rejected"]
AdjustKind = Literal["count", "delta"]
AdjustOutcome = Literal["applied", "duplicate", "stale"]
DeliveryOutcome = Literal["applied", "duplicate", "already_delivered"]
EventType = Literal[
    "order.placed",
    "order.held",
    "order.released",
    "allocation.rejected",
    "order.rerouted",
    "order.line_cancelled",
    "order.cancelled",
    "shipment.created",
    "delivery.confirmed",
    "return.created",
    "return.received",
    "inventory.low",
]


@dataclass(frozen=True, slots=True)
class NodeRecord:
    """A fulfilment node as the ledger knows it; ``calendar`` lists planned closures."""

    node_id: str
    node_type: str
    lat: float
    lon: float
    enabled: bool = True
    priority: int = 0
    timezone: str = "UTC"
    daily_capacity: int = 0
    closed_until: datetime | None = None
    calendar: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InitialStock:
    """Initial load: on-hand for one node×SKU."""

    node_id: str
    sku: str
    on_hand: int


@dataclass(frozen=True, slots=True)
class StockLevel:
    node_id: str
    sku: str
    on_hand: int
    reserved: int
    available: int
    shipped: int = 0
    shortfall: int = 0


@dataclass(frozen=True, slots=True)
class StockPosition:
    """A node×SKU's live position and when it was last counted (feeds live features)."""

    node_id: str
    sku: str
    on_hand: int
    reserved: int
    available: int
    last_count_at: datetime | None


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """One order line (or part of it) to reserve at one node."""

    line_id: str
    node_id: str
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class AllocationView:
    allocation_id: int
    line_id: str
    node_id: str
    sku: str
    qty: int
    status: AllocationStatus
    reason: str | None = None
    shipment_id: str | None = None


@dataclass(frozen=True, slots=True)
class ShipmentView:
    """A parcel that left one node: its carrier, tracking number and (once confirmed) delivery."""

    shipment_id: str
    node_id: str
    line_ids: list[str]
    carrier: str | None
    tracking_number: str | None
    shipped_at: datetime
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderView:
    order_id: str
    status: OrderStatus
    request_hash: str
    plan: dict[str, Any]
    rejections: int
    created_at: datetime
    allocations: list[AllocationView]
    shipments: list[ShipmentView] = field(default_factory=list)
    hold_reasons: list[str] | None = None
    hold_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    """Why a screened order is held, and when the hold lapses (its stock is then released)."""

    reasons: tuple[str, ...]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of placing an order. ``replayed`` means an earlier identical request answered."""

    order_id: str
    status: OrderStatus
    allocations: list[AllocationView]
    replayed: bool = False
    response: dict[str, Any] | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class IdemState:
    """Result of claiming an idempotency key: ``claimed`` (go ahead) or ``replay`` (answer stored)."""

    key: str
    state: Literal["claimed", "replay"]
    response: dict[str, Any] | None = None
    http_status: int | None = None
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class RerouteLine:
    """Quantity of an order line that lost its node and needs a new one."""

    line_id: str
    sku: str
    qty: int
    rejected_node_id: str


@dataclass(frozen=True, slots=True)
class RejectResult:
    order_id: str
    node_id: str
    reason: RejectReason
    reroute: list[RerouteLine]
    order_status: OrderStatus
    rejections: int
    node_closed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class InventoryEvent:
    """An adjustment from any channel: ``count`` sets on-hand, ``delta`` adds to it."""

    event_id: str
    event_time: datetime
    node_id: str
    sku: str
    kind: AdjustKind
    qty: int
    #: the channel that sent it (POS, WMS, marketplace…); stored with the event for audit
    source: str | None = None


@dataclass(frozen=True, slots=True)
class AdjustResult:
    event_id: str
    outcome: AdjustOutcome
    node_id: str
    sku: str
    on_hand: int
    reserved: int
    available: int
    shortfall: int
    #: the source stored with the event id (the first sender's, for a duplicate)
    source: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryEvent:
    """A carrier's delivery confirmation for one shipment of an order.

    The shipment is named by ``shipment_id`` or by its ``tracking_number``; an order with a
    single shipment needs neither.
    """

    event_id: str
    delivered_at: datetime
    shipment_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """``applied``: the shipment is now delivered; ``duplicate``: this event id was seen before;
    ``already_delivered``: another event confirmed the shipment first (its time is kept)."""

    event_id: str
    shipment_id: str
    outcome: DeliveryOutcome
    delivered_at: datetime


@dataclass(frozen=True, slots=True)
class DriftRow:
    """One node×SKU whose stock row disagrees with its movement-log replay."""

    node_id: str
    sku: str
    row_on_hand: int
    row_reserved: int
    row_shipped: int
    log_on_hand: int
    log_reserved: int
    log_shipped: int


@dataclass(frozen=True, slots=True)
class DriftReport:
    checked: int
    drifted: list[DriftRow]
    repaired: bool

    @property
    def clean(self) -> bool:
        return not self.drifted


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    decision_id: str
    order_id: str | None
    created_at: datetime
    request: dict[str, Any]
    plan: dict[str, Any]
    model_versions: dict[str, Any]
    mode: str
    degraded: bool


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """A shadow plan stored beside a live decision (``plan`` is None when it failed)."""

    decision_id: str
    created_at: datetime
    live_mode: str
    mode: str
    plan: dict[str, Any] | None
    comparison: dict[str, Any] | None
    error: str | None
