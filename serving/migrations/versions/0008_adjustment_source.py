"""Inventory adjustments keep the channel that sent them (POS, WMS, marketplace…).

Revision ID: 0008_adjustment_source
Revises: 0007_returns
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_adjustment_source"
down_revision: str | None = "0007_returns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inventory_events") as batch:
        batch.add_column(sa.Column("source", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inventory_events") as batch:
        batch.drop_column("source")
