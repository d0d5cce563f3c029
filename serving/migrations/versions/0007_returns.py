"""Returns: where each return goes (and why), its lines, and what arrived in which condition.

Revision ID: 0007_returns
Revises: 0006_order_holds
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_returns"
down_revision: str | None = "0006_order_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("return_id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('open', 'received')", name=op.f("ck_returns_status")),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_returns_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.node_id"], name=op.f("fk_returns_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("return_id", name=op.f("pk_returns")),
    )
    op.create_index("ix_returns_order_id", "returns", ["order_id"])
    op.create_table(
        "return_lines",
        sa.Column("return_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(128), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("resellable", sa.BigInteger(), nullable=False),
        sa.Column("damaged", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("qty > 0", name=op.f("ck_return_lines_qty_positive")),
        sa.CheckConstraint(
            "resellable >= 0 AND damaged >= 0", name=op.f("ck_return_lines_received_nonneg")
        ),
        sa.CheckConstraint(
            "resellable + damaged <= qty", name=op.f("ck_return_lines_received_le_qty")
        ),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.return_id"], name=op.f("fk_return_lines_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("return_id", "line_id", name=op.f("pk_return_lines")),
    )


def downgrade() -> None:
    op.drop_table("return_lines")
    op.drop_index("ix_returns_order_id", table_name="returns")
    op.drop_table("returns")
