"""Screening holds: orders may be ``held`` (stock reserved, not released to nodes) with the
reasons and an expiry; customer and destination keys let screening count recent orders.

Revision ID: 0006_order_holds
Revises: 0005_outbox_events
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_order_holds"
down_revision: str | None = "0005_outbox_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("placed", "partially_shipped", "shipped", "cancelled", "exception")
NEW = ("placed", "held", "partially_shipped", "shipped", "cancelled", "exception")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _status(values: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(repr(v) for v in values) + ")"


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(op.f("ck_orders_status"), type_="check")
        batch.create_check_constraint(op.f("ck_orders_status"), _status(NEW))
        batch.add_column(sa.Column("hold_reasons", _json(), nullable=True))
        batch.add_column(sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("customer_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("destination_key", sa.String(64), nullable=True))
    op.create_index("ix_orders_customer_id", "orders", ["customer_id", "created_at"])
    op.create_index("ix_orders_destination_key", "orders", ["destination_key", "created_at"])
    op.create_index("ix_orders_hold_expires_at", "orders", ["hold_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_hold_expires_at", table_name="orders")
    op.drop_index("ix_orders_destination_key", table_name="orders")
    op.drop_index("ix_orders_customer_id", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("destination_key")
        batch.drop_column("customer_id")
        batch.drop_column("hold_expires_at")
        batch.drop_column("hold_reasons")
        batch.drop_constraint(op.f("ck_orders_status"), type_="check")
        batch.create_check_constraint(op.f("ck_orders_status"), _status(OLD))
