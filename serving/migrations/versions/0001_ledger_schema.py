"""Ledger schema: nodes, stock with non-negative available, orders, allocations, the append-only
movement log, idempotency keys, inventory events and decision audit.

Revision ID: 0001_ledger_schema
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_ledger_schema"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("node_type", sa.String(16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("daily_capacity", sa.Integer(), nullable=False),
        sa.Column("closed_until", TS, nullable=True),
        sa.Column("calendar", _json(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("daily_capacity >= 0", name=op.f("ck_nodes_capacity_nonneg")),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nodes")),
    )
    op.create_table(
        "stock",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("on_hand", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("shipped", sa.BigInteger(), nullable=False),
        sa.Column("available", sa.BigInteger(), sa.Computed("on_hand - reserved", persisted=True)),
        sa.Column("shortfall", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_count_at", TS, nullable=True),
        sa.Column("last_event_at", TS, nullable=True),
        sa.CheckConstraint("on_hand - reserved >= 0", name=op.f("ck_stock_available_nonneg")),
        sa.CheckConstraint("reserved >= 0", name=op.f("ck_stock_reserved_nonneg")),
        sa.CheckConstraint("on_hand >= 0", name=op.f("ck_stock_on_hand_nonneg")),
        sa.CheckConstraint("shipped >= 0", name=op.f("ck_stock_shipped_nonneg")),
        sa.CheckConstraint("shortfall >= 0", name=op.f("ck_stock_shortfall_nonneg")),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.node_id"], name=op.f("fk_stock_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("node_id", "sku", name=op.f("pk_stock")),
    )
    op.create_index("ix_stock_sku", "stock", ["sku"])

    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("request_hash", sa.String(128), nullable=False),
        sa.Column("plan", _json(), nullable=False),
        sa.Column("rejections", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('placed', 'partially_shipped', 'shipped', 'cancelled', 'exception')",
            name=op.f("ck_orders_status"),
        ),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_orders")),
    )
    op.create_table(
        "order_allocations",
        sa.Column("allocation_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(128), nullable=False),
        sa.Column("line_id", sa.String(128), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("qty > 0", name=op.f("ck_order_allocations_qty_positive")),
        sa.CheckConstraint(
            "status IN ('reserved', 'shipped', 'released', 'rejected')",
            name=op.f("ck_order_allocations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.order_id"], name=op.f("fk_order_allocations_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.node_id"], name=op.f("fk_order_allocations_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("allocation_id", name=op.f("pk_order_allocations")),
    )
    op.create_index("ix_order_allocations_order_id", "order_allocations", ["order_id"])
    op.create_index("ix_order_allocations_node_sku", "order_allocations", ["node_id", "sku"])

    op.create_table(
        "movements",
        sa.Column("movement_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("event_time", TS, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("d_on_hand", sa.BigInteger(), nullable=False),
        sa.Column("d_reserved", sa.BigInteger(), nullable=False),
        sa.Column("d_shipped", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('receipt', 'count', 'delta', 'reserve', 'release', 'ship', 'reject_adjust')",
            name=op.f("ck_movements_kind"),
        ),
        sa.PrimaryKeyConstraint("movement_id", name=op.f("pk_movements")),
    )
    op.create_index("ix_movements_node_sku_time", "movements", ["node_id", "sku", "event_time"])

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response", _json(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('in_flight', 'done')", name=op.f("ck_idempotency_keys_status")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "inventory_events",
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("event_time", TS, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("qty", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_inventory_events")),
    )
    op.create_index("ix_inventory_events_node_sku", "inventory_events", ["node_id", "sku"])

    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(128), nullable=False),
        sa.Column("order_id", sa.String(128), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("request", _json(), nullable=False),
        sa.Column("plan", _json(), nullable=False),
        sa.Column("model_versions", _json(), nullable=False),
        sa.Column("mode", sa.String(32), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    op.create_index("ix_decisions_order_id", "decisions", ["order_id"])

    _append_only_movements()


def _append_only_movements() -> None:
    """The movement log is the audit trail drift repair trusts, so the database refuses edits."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER movements_no_{verb.lower()} BEFORE {verb} ON movements "
                "BEGIN SELECT RAISE(ABORT, 'movements are append-only'); END"
            )
        return
    op.execute(
        "CREATE FUNCTION movements_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'movements are append-only'; END $$"
    )
    op.execute(
        "CREATE TRIGGER movements_no_change BEFORE UPDATE OR DELETE ON movements "
        "FOR EACH ROW EXECUTE FUNCTION movements_append_only()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS movements_no_update")
        op.execute("DROP TRIGGER IF EXISTS movements_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS movements_no_change ON movements")
        op.execute("DROP FUNCTION IF EXISTS movements_append_only()")
    for table in (
        "decisions",
        "inventory_events",
        "idempotency_keys",
        "movements",
        "order_allocations",
        "orders",
        "stock",
        "nodes",
    ):
        op.drop_table(table)
