"""PostgreSQL functions that read an order's allocations and its last event sequence as they
are after the order row was locked, for the one statement that locks and reads an order.

In one statement, ``SELECT … FOR UPDATE`` that waited for another writer of the order (a
shipment, a rejected line, a reallocation) returns the order row as that writer committed
it, but every other table is read as of the statement's start: the allocations would be
the ones from before the other writer, so a cancel could release stock a shipment had just
taken. A VOLATILE PL/pgSQL function takes a new snapshot for each query it runs, so called
per locked order row (``LATERAL``) it reads what was committed before the lock was granted,
with no second round trip.

SQLite gets no functions: its writers are serialised by the database lock.

Revision ID: 0013_order_read_after_lock
Revises: 0012_stock_functions
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_order_read_after_lock"
down_revision: str | None = "0012_stock_functions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ALLOCATIONS = """
CREATE OR REPLACE FUNCTION ledger_order_allocations(p_order text)
RETURNS SETOF order_allocations LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM order_allocations WHERE order_id = p_order
        ORDER BY allocation_id;
END
$$
"""

LAST_SEQUENCE = """
CREATE OR REPLACE FUNCTION ledger_last_sequence(p_subject text)
RETURNS integer LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT coalesce(max(sequence), 0) FROM events WHERE subject = p_subject);
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(ALLOCATIONS)
    op.execute(LAST_SEQUENCE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS ledger_last_sequence(text)")
    op.execute("DROP FUNCTION IF EXISTS ledger_order_allocations(text)")
