"""Promise monitoring: each confirmed shipment against the promise it was made under, and the
per-lane P90 widening measured from them.

Revision ID: 0010_promise_outcomes
Revises: 0009_return_receipts
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_promise_outcomes"
down_revision: str | None = "0009_return_receipts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "promise_outcomes",
        sa.Column("shipment_id", sa.String(160), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("dest_region", sa.String(64), nullable=False),
        sa.Column("deliver_p50", sa.String(10), nullable=False),
        sa.Column("deliver_by", sa.String(10), nullable=False),
        sa.Column("delivered_on", sa.String(10), nullable=False),
        sa.Column("days_late", sa.Integer(), nullable=False),
        sa.Column("p50_error_days", sa.Integer(), nullable=False),
        sa.Column("widened_days", sa.Float(), nullable=False),
        sa.Column("delivery_model", sa.String(64), nullable=True),
        sa.Column("delivered_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.shipment_id"],
            name=op.f("fk_promise_outcomes_shipment_id_shipments"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_promise_outcomes_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_promise_outcomes")),
    )
    op.create_index("ix_promise_outcomes_delivered_at", "promise_outcomes", ["delivered_at"])
    op.create_table(
        "lane_widening",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("dest_region", sa.String(64), nullable=False),
        sa.Column("delivery_model", sa.String(64), nullable=False),
        sa.Column("widen_days", sa.Float(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint(
            "node_id", "dest_region", "delivery_model", name=op.f("pk_lane_widening")
        ),
    )


def downgrade() -> None:
    op.drop_table("lane_widening")
    op.drop_index("ix_promise_outcomes_delivered_at", table_name="promise_outcomes")
    op.drop_table("promise_outcomes")
