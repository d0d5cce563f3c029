"""Ledger tables (SQLAlchemy Core). Alembic migrations create them; this metadata is what the code
queries and what the schema-drift test compares the migrated database against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

from serving.ledger.records import EventType

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

ORDER_STATUSES = ("placed", "held", "partially_shipped", "shipped", "cancelled", "exception")
ALLOCATION_STATUSES = ("reserved", "shipped", "released", "rejected")
MOVEMENT_KINDS = ("receipt", "count", "delta", "reserve", "release", "ship", "reject_adjust")
IDEMPOTENCY_STATUSES = ("in_flight", "done")
DELIVERY_OUTCOMES = ("applied", "already_delivered")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out on every backend.

    SQLite has no time zone type; storing naive UTC keeps its string comparison ordered, and
    tagging results as UTC keeps Python comparisons between stored and incoming times valid.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger needs timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> Any:
    return JSON().with_variant(JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("node_type", String(16), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("priority", Integer, nullable=False, default=0),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("daily_capacity", Integer, nullable=False, default=0),
    Column("closed_until", UTCDateTime, nullable=True),
    Column("calendar", _json(), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("daily_capacity >= 0", name="capacity_nonneg"),
)

stock = Table(
    "stock",
    metadata,
    Column("node_id", String(64), ForeignKey("nodes.node_id"), primary_key=True),
    Column("sku", String(64), primary_key=True),
    Column("on_hand", BigInteger, nullable=False, default=0),
    Column("reserved", BigInteger, nullable=False, default=0),
    Column("shipped", BigInteger, nullable=False, default=0),
    Column("available", BigInteger, Computed("on_hand - reserved", persisted=True)),
    Column("shortfall", BigInteger, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_count_at", UTCDateTime, nullable=True),
    Column("last_event_at", UTCDateTime, nullable=True),
    CheckConstraint("on_hand - reserved >= 0", name="available_nonneg"),
    CheckConstraint("reserved >= 0", name="reserved_nonneg"),
    CheckConstraint("on_hand >= 0", name="on_hand_nonneg"),
    CheckConstraint("shipped >= 0", name="shipped_nonneg"),
    CheckConstraint("shortfall >= 0", name="shortfall_nonneg"),
)
Index("ix_stock_sku", stock.c.sku)

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("status", String(32), nullable=False),
    Column("request_hash", String(128), nullable=False),
    Column("plan", _json(), nullable=False),
    Column("rejections", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("hold_reasons", _json(), nullable=True),
    Column("hold_expires_at", UTCDateTime, nullable=True),
    Column("customer_id", String(128), nullable=True),
    Column("destination_key", String(64), nullable=True),
    CheckConstraint(_in("status", ORDER_STATUSES), name="status"),
)
Index("ix_orders_customer_id", orders.c.customer_id, orders.c.created_at)
Index("ix_orders_destination_key", orders.c.destination_key, orders.c.created_at)
Index("ix_orders_hold_expires_at", orders.c.hold_expires_at)

order_allocations = Table(
    "order_allocations",
    metadata,
    Column("allocation_id", Integer, primary_key=True, autoincrement=True),
    Column("order_id", String(128), ForeignKey("orders.order_id"), nullable=False),
    Column("line_id", String(128), nullable=False),
    Column("node_id", String(64), ForeignKey("nodes.node_id"), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("shipment_id", String(160), nullable=True),
    CheckConstraint("qty > 0", name="qty_positive"),
    CheckConstraint(_in("status", ALLOCATION_STATUSES), name="status"),
)
Index("ix_order_allocations_order_id", order_allocations.c.order_id)
Index("ix_order_allocations_node_sku", order_allocations.c.node_id, order_allocations.c.sku)
Index(
    "ix_order_allocations_node_created",
    order_allocations.c.node_id,
    order_allocations.c.created_at,
)

shipments = Table(
    "shipments",
    metadata,
    Column("shipment_id", String(160), primary_key=True),
    Column("order_id", String(128), ForeignKey("orders.order_id"), nullable=False),
    Column("node_id", String(64), ForeignKey("nodes.node_id"), nullable=False),
    Column("carrier", String(64), nullable=True),
    Column("tracking_number", String(128), nullable=True),
    Column("shipped_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("delivery_event_id", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_shipments_order_id", shipments.c.order_id)
Index("ix_shipments_tracking_number", shipments.c.tracking_number)

deliveries = Table(
    "deliveries",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("order_id", String(128), ForeignKey("orders.order_id"), nullable=False),
    Column("shipment_id", String(160), ForeignKey("shipments.shipment_id"), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
    Column("carrier", String(64), nullable=True),
    Column("tracking_number", String(128), nullable=True),
    Column("outcome", String(24), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    CheckConstraint(_in("outcome", DELIVERY_OUTCOMES), name="outcome"),
)
Index("ix_deliveries_shipment_id", deliveries.c.shipment_id)

movements = Table(
    "movements",
    metadata,
    Column("movement_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("event_time", UTCDateTime, nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("d_on_hand", BigInteger, nullable=False, default=0),
    Column("d_reserved", BigInteger, nullable=False, default=0),
    Column("d_shipped", BigInteger, nullable=False, default=0),
    Column("ref", String(128), nullable=True),
    Column("note", Text, nullable=True),
    CheckConstraint(_in("kind", MOVEMENT_KINDS), name="kind"),
)
Index("ix_movements_node_sku_time", movements.c.node_id, movements.c.sku, movements.c.event_time)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("response", _json(), nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("order_id", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(_in("status", IDEMPOTENCY_STATUSES), name="status"),
)

inventory_events = Table(
    "inventory_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("event_time", UTCDateTime, nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    #: the channel that sent it (POS, WMS, marketplace…), kept for audit
    Column("source", String(256), nullable=True),
)
Index("ix_inventory_events_node_sku", inventory_events.c.node_id, inventory_events.c.sku)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(128), primary_key=True),
    Column("order_id", String(128), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("request", _json(), nullable=False),
    Column("plan", _json(), nullable=False),
    Column("model_versions", _json(), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("degraded", Boolean, nullable=False, default=False),
)
Index("ix_decisions_order_id", decisions.c.order_id)

# The plan a second (shadow) routing mode made beside a live decision; never reserved.
decision_shadows = Table(
    "decision_shadows",
    metadata,
    Column("decision_id", String(128), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("live_mode", String(32), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("plan", _json(), nullable=True),
    Column("comparison", _json(), nullable=True),
    Column("error", Text, nullable=True),
)
Index("ix_decision_shadows_created_at", decision_shadows.c.created_at)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("scopes", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

EVENT_TYPES: tuple[str, ...] = get_args(EventType)
DELIVERY_STATUSES = ("pending", "delivered", "dead")

# Transactional outbox: an event row is written in the same transaction as the state change it
# describes, so a change is never committed without its event (nor an event without its change).
events = Table(
    "events",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("type", String(48), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("order_id", String(128), nullable=True),
    Column("payload", _json(), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint(_in("type", EVENT_TYPES), name="type"),
    CheckConstraint("sequence > 0", name="sequence_positive"),
    UniqueConstraint("subject", "sequence", name="uq_events_subject_sequence"),
)
Index("ix_events_order_id", events.c.order_id)

# One row per (event, webhook endpoint), written with the event: the dispatcher's work queue.
event_deliveries = Table(
    "event_deliveries",
    metadata,
    Column("event_id", String(64), ForeignKey("events.event_id"), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    CheckConstraint("attempts >= 0", name="attempts_nonneg"),
)
Index(
    "ix_event_deliveries_status_due",
    event_deliveries.c.status,
    event_deliveries.c.next_attempt_at,
)

RETURN_STATUSES = ("open", "received")
RETURN_CONDITIONS = ("resellable", "damaged")

returns = Table(
    "returns",
    metadata,
    Column("return_id", String(64), primary_key=True),
    Column("order_id", String(128), ForeignKey("orders.order_id"), nullable=False),
    Column("node_id", String(64), ForeignKey("nodes.node_id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("why", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint(_in("status", RETURN_STATUSES), name="status"),
)
Index("ix_returns_order_id", returns.c.order_id)

return_lines = Table(
    "return_lines",
    metadata,
    Column("return_id", String(64), ForeignKey("returns.return_id"), primary_key=True),
    Column("line_id", String(128), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("qty", BigInteger, nullable=False),
    Column("resellable", BigInteger, nullable=False, default=0),
    Column("damaged", BigInteger, nullable=False, default=0),
    CheckConstraint("qty > 0", name="qty_positive"),
    CheckConstraint("resellable >= 0 AND damaged >= 0", name="received_nonneg"),
    CheckConstraint("resellable + damaged <= qty", name="received_le_qty"),
)

#: one row per receipt id, so a resent receipt is recognised instead of counted twice
return_receipts = Table(
    "return_receipts",
    metadata,
    Column("receipt_id", String(128), primary_key=True),
    Column("return_id", String(64), ForeignKey("returns.return_id"), nullable=False),
    Column("lines", _json(), nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)

# One row per confirmed shipment: the promise it was made under and when it arrived, as dates
# at the destination. ``days_late`` > 0 is a missed ``deliver_by``; ``widened_days`` is the
# lane widening the promise already carried (so a lane's raw residual is days_late + widened).
promise_outcomes = Table(
    "promise_outcomes",
    metadata,
    Column("shipment_id", String(160), ForeignKey("shipments.shipment_id"), primary_key=True),
    Column("order_id", String(128), ForeignKey("orders.order_id"), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("dest_region", String(64), nullable=False),
    Column("deliver_p50", String(10), nullable=False),
    Column("deliver_by", String(10), nullable=False),
    Column("delivered_on", String(10), nullable=False),
    Column("days_late", Integer, nullable=False),
    Column("p50_error_days", Integer, nullable=False),
    Column("widened_days", Float, nullable=False),
    Column("delivery_model", String(64), nullable=True),
    Column("delivered_at", UTCDateTime, nullable=False),
)
Index("ix_promise_outcomes_delivered_at", promise_outcomes.c.delivered_at)

# The conformal widening of a lane's P90 (node → destination region), for the delivery model
# version it was measured against; a new champion starts from none.
lane_widening = Table(
    "lane_widening",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("dest_region", String(64), primary_key=True),
    Column("delivery_model", String(64), primary_key=True),
    Column("widen_days", Float, nullable=False),
    Column("coverage", Float, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
