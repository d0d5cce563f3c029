"""Decision audit: what was asked, what was decided, with which models, in which mode."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from serving.ledger.records import DecisionRecord
from serving.ledger.stock_ops import insert_ignore
from serving.ledger.tables import decisions


def record(conn: Connection, rec: DecisionRecord) -> bool:
    """Insert once per decision id; a retried request does not duplicate its audit row."""
    result = conn.execute(
        insert_ignore(conn, decisions)
        .values(
            decision_id=rec.decision_id,
            order_id=rec.order_id,
            created_at=rec.created_at,
            request=rec.request,
            plan=rec.plan,
            model_versions=rec.model_versions,
            mode=rec.mode,
            degraded=rec.degraded,
        )
        .returning(decisions.c.decision_id)
    )
    return result.first() is not None


def fetch(conn: Connection, decision_id: str) -> DecisionRecord | None:
    r: Any = conn.execute(
        select(decisions).where(decisions.c.decision_id == decision_id)
    ).one_or_none()
    if r is None:
        return None
    return DecisionRecord(
        decision_id=r.decision_id,
        order_id=r.order_id,
        created_at=r.created_at,
        request=r.request,
        plan=r.plan,
        model_versions=r.model_versions,
        mode=r.mode,
        degraded=bool(r.degraded),
    )
