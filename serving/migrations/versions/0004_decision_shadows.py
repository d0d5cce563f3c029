"""Shadow plans: the plan a second routing mode would have made beside each live decision,
with its comparison to the live plan (nodes, cost, predicted risk). Never reserved.

Revision ID: 0004_decision_shadows
Revises: 0003_shipments_deliveries
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_decision_shadows"
down_revision: str | None = "0003_shipments_deliveries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "decision_shadows",
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("live_mode", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("plan", _json(), nullable=True),
        sa.Column("comparison", _json(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decision_shadows")),
    )
    op.create_index("ix_decision_shadows_created_at", "decision_shadows", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_decision_shadows_created_at", table_name="decision_shadows")
    op.drop_table("decision_shadows")
