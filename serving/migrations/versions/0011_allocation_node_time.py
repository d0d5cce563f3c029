"""Allocations by node and time: every reservation counts a capacity-limited node's orders of
its local day (``node_id = :n AND created_at >= :midnight``), which the (node_id, sku) index
answered by reading every allocation the node ever had.

Revision ID: 0011_allocation_node_time
Revises: 0010_promise_outcomes
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_allocation_node_time"
down_revision: str | None = "0010_promise_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_order_allocations_node_created",
        "order_allocations",
        ["node_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_order_allocations_node_created", table_name="order_allocations")
