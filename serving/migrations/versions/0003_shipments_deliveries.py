"""Shipments keep their carrier and tracking number; carriers' delivery confirmations are stored
once per event id, so delivery times become labels and promises can be checked.

Revision ID: 0003_shipments_deliveries
Revises: 0002_api_keys
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_shipments_deliveries"
down_revision: str | None = "0002_api_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("shipment_id", sa.String(160), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("carrier", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(128), nullable=True),
        sa.Column("shipped_at", TS, nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("delivery_event_id", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_shipments_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.node_id"], name=op.f("fk_shipments_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_shipments")),
    )
    op.create_index("ix_shipments_order_id", "shipments", ["order_id"])
    op.create_index("ix_shipments_tracking_number", "shipments", ["tracking_number"])
    op.create_table(
        "deliveries",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("shipment_id", sa.String(160), nullable=False),
        sa.Column("delivered_at", TS, nullable=False),
        sa.Column("carrier", sa.String(64), nullable=True),
        sa.Column("tracking_number", sa.String(128), nullable=True),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.CheckConstraint(
            "outcome IN ('applied', 'already_delivered')", name=op.f("ck_deliveries_outcome")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_deliveries_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.shipment_id"],
            name=op.f("fk_deliveries_shipment_id_shipments"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_shipment_id", "deliveries", ["shipment_id"])
    op.add_column("order_allocations", sa.Column("shipment_id", sa.String(160), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_allocations") as batch:
        batch.drop_column("shipment_id")
    op.drop_index("ix_deliveries_shipment_id", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index("ix_shipments_tracking_number", table_name="shipments")
    op.drop_index("ix_shipments_order_id", table_name="shipments")
    op.drop_table("shipments")
