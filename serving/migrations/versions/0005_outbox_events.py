"""Transactional outbox: events written with each state change, and one delivery row per
(event, webhook endpoint) that the dispatcher works through.

Revision ID: 0005_outbox_events
Revises: 0004_decision_shadows
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_outbox_events"
down_revision: str | None = "0004_decision_shadows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
EVENT_TYPES = (
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
)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    types = ", ".join(repr(t) for t in EVENT_TYPES)
    op.create_table(
        "events",
        sa.Column("position", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(48), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=True),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(f"type IN ({types})", name=op.f("ck_events_type")),
        sa.CheckConstraint("sequence > 0", name=op.f("ck_events_sequence_positive")),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
        sa.UniqueConstraint("subject", "sequence", name="uq_events_subject_sequence"),
    )
    op.create_index("ix_events_order_id", "events", ["order_id"])
    op.create_table(
        "event_deliveries",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'dead')", name=op.f("ck_event_deliveries_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_event_deliveries_attempts_nonneg")),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.event_id"],
            name=op.f("fk_event_deliveries_event_id_events"),
        ),
        sa.PrimaryKeyConstraint("event_id", "endpoint", name=op.f("pk_event_deliveries")),
    )
    op.create_index(
        "ix_event_deliveries_status_due", "event_deliveries", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_event_deliveries_status_due", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_index("ix_events_order_id", table_name="events")
    op.drop_table("events")
