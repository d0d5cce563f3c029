"""PostgreSQL functions for the stock step of a reservation and of a release, so the hot stock
rows are locked, checked, written and logged in one call the transaction commits right behind.

Run from Python, the reservation's stock step was three round trips with the hot rows locked
(lock and read them, the guarded write with its movement rows, the node capacity count), and a
release two per row; with 16 clients on a few hot SKUs every round trip under the locks
queued the others. The functions do what ``serving.ledger.stock_ops`` does on SQLite, in the
same order:

* ``ledger_reserve``: for each (node, sku) in the order given (the caller sorts, the order
  every writer locks in), ``UPDATE … SET reserved = reserved + qty WHERE on_hand - reserved
  >= qty`` (the check and the write are one statement; the table's CHECK stays the last
  line). After the first row that cannot cover its need, nothing more is written and the
  other rows are only read, so the refusal (SQLSTATE ``RC001``, the shortages as JSON in
  DETAIL) names every shortage; the transaction then rolls back. Otherwise one movement row
  per stock row, then each capacity-limited node of the order is locked (``FOR NO KEY
  UPDATE``, after the stock rows as everywhere) and its distinct orders of its local day
  counted: ``RC002`` with [node, capacity] when it is full. Returns each written row as it
  is now and its available stock before (for the low-stock event).
* ``ledger_release``: ``reserved - qty`` on each row in the order given, one ``release``
  movement row per stock row (``ref`` and ``note`` as given).

SQLite gets no functions: it has no row locks or round trips to save.

Revision ID: 0012_stock_functions
Revises: 0011_allocation_node_time
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012_stock_functions"
down_revision: str | None = "0011_allocation_node_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESERVE = """
CREATE OR REPLACE FUNCTION ledger_reserve(
    p_order text, p_at timestamptz, p_nodes text[], p_skus text[], p_qtys bigint[]
) RETURNS TABLE (
    node_id text, sku text, on_hand bigint, reserved bigint, shipped bigint,
    shortfall bigint, last_count_at timestamptz, last_event_at timestamptz,
    before_available bigint
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    i integer;
    short jsonb := '[]'::jsonb;
    avail bigint;
    cap record;
    taken bigint;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_nodes, 1), 0) LOOP
        IF jsonb_array_length(short) = 0 THEN
            UPDATE stock AS s
               SET reserved = s.reserved + p_qtys[i], updated_at = p_at
             WHERE s.node_id = p_nodes[i] AND s.sku = p_skus[i]
               AND s.on_hand - s.reserved >= p_qtys[i]
            RETURNING s.node_id, s.sku, s.on_hand, s.reserved, s.shipped, s.shortfall,
                      s.last_count_at, s.last_event_at, s.on_hand - s.reserved + p_qtys[i]
                 INTO node_id, sku, on_hand, reserved, shipped, shortfall,
                      last_count_at, last_event_at, before_available;
            IF FOUND THEN
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;
        -- the first short row (its guarded write refused), then every later row that is
        avail := coalesce((SELECT s.on_hand - s.reserved FROM stock AS s
                            WHERE s.node_id = p_nodes[i] AND s.sku = p_skus[i]), 0);
        IF avail < p_qtys[i] OR jsonb_array_length(short) = 0 THEN
            short := short || jsonb_build_array(
                jsonb_build_array(p_nodes[i], p_skus[i], p_qtys[i], avail));
        END IF;
    END LOOP;
    IF jsonb_array_length(short) > 0 THEN
        RAISE EXCEPTION 'insufficient stock' USING ERRCODE = 'RC001', DETAIL = short::text;
    END IF;
    INSERT INTO movements (at, event_time, node_id, sku, kind, d_on_hand, d_reserved,
                           d_shipped, ref, note)
    SELECT p_at, p_at, k.n, k.s, 'reserve', 0, k.q, 0, p_order, NULL
      FROM unnest(p_nodes, p_skus, p_qtys) WITH ORDINALITY AS k(n, s, q, o)
     ORDER BY k.o;
    FOR cap IN
        SELECT nd.node_id, nd.timezone, nd.daily_capacity FROM nodes AS nd
         WHERE nd.node_id = ANY (p_nodes) AND nd.daily_capacity > 0
         ORDER BY nd.node_id
           FOR NO KEY UPDATE
    LOOP
        SELECT count(DISTINCT a.order_id) INTO taken
          FROM order_allocations AS a
         WHERE a.node_id = cap.node_id
           AND a.created_at >= (date_trunc('day', p_at AT TIME ZONE cap.timezone)
                                AT TIME ZONE cap.timezone)
           AND a.status IN ('reserved', 'shipped')
           AND a.order_id <> p_order;
        IF taken >= cap.daily_capacity THEN
            RAISE EXCEPTION 'capacity reached' USING ERRCODE = 'RC002',
                DETAIL = jsonb_build_array(cap.node_id, cap.daily_capacity)::text;
        END IF;
    END LOOP;
END
$$;
"""

RELEASE = """
CREATE OR REPLACE FUNCTION ledger_release(
    p_ref text, p_note text, p_at timestamptz, p_nodes text[], p_skus text[], p_qtys bigint[]
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    n integer := coalesce(array_length(p_nodes, 1), 0);
BEGIN
    FOR i IN 1 .. n LOOP
        UPDATE stock AS s
           SET reserved = s.reserved - p_qtys[i], updated_at = p_at
         WHERE s.node_id = p_nodes[i] AND s.sku = p_skus[i];
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no stock row % / % to release', p_nodes[i], p_skus[i]
                USING ERRCODE = 'RC003';
        END IF;
    END LOOP;
    INSERT INTO movements (at, event_time, node_id, sku, kind, d_on_hand, d_reserved,
                           d_shipped, ref, note)
    SELECT p_at, p_at, k.n, k.s, 'release', 0, -k.q, 0, p_ref, p_note
      FROM unnest(p_nodes, p_skus, p_qtys) WITH ORDINALITY AS k(n, s, q, o)
     ORDER BY k.o;
    RETURN n;
END
$$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(RESERVE)
    op.execute(RELEASE)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS ledger_release(text, text, timestamptz, text[], text[], bigint[])"
    )
    op.execute(
        "DROP FUNCTION IF EXISTS ledger_reserve(text, timestamptz, text[], text[], bigint[])"
    )
