"""Return receipts by id, so a warehouse resending a receipt does not restock twice.

Revision ID: 0009_return_receipts
Revises: 0008_adjustment_source
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_return_receipts"
down_revision: str | None = "0008_adjustment_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "return_receipts",
        sa.Column("receipt_id", sa.String(128), nullable=False),
        sa.Column("return_id", sa.String(64), nullable=False),
        sa.Column(
            "lines", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["return_id"],
            ["returns.return_id"],
            name=op.f("fk_return_receipts_return_id_returns"),
        ),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_return_receipts")),
    )


def downgrade() -> None:
    op.drop_table("return_receipts")
