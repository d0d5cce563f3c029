"""Decision audit: what was asked, what was decided, with which models, in which mode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from serving.ledger.records import DecisionRecord, ShadowRecord
from serving.ledger.stock_ops import insert_ignore
from serving.ledger.tables import decision_shadows, decisions

_DECISION_COLUMNS = tuple(f.name for f in fields(DecisionRecord))


def record_many(conn: Connection, recs: Sequence[DecisionRecord]) -> None:
    """Insert many decisions in one statement; ids already stored are left as they are."""
    if recs:
        # not dataclasses.asdict: it deep-copies every request and plan document
        conn.execute(
            insert_ignore(conn, decisions),
            [{c: getattr(r, c) for c in _DECISION_COLUMNS} for r in recs],
        )


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


def record_shadow(conn: Connection, rec: ShadowRecord) -> bool:
    """Insert the shadow plan of a decision once; it may land before or after the live row."""
    result = conn.execute(
        insert_ignore(conn, decision_shadows)
        .values(
            decision_id=rec.decision_id,
            created_at=rec.created_at,
            live_mode=rec.live_mode,
            mode=rec.mode,
            plan=rec.plan,
            comparison=rec.comparison,
            error=rec.error,
        )
        .returning(decision_shadows.c.decision_id)
    )
    return result.first() is not None


def _shadow(r: Any) -> ShadowRecord:
    return ShadowRecord(
        decision_id=r.decision_id,
        created_at=r.created_at,
        live_mode=r.live_mode,
        mode=r.mode,
        plan=r.plan,
        comparison=r.comparison,
        error=r.error,
    )


def fetch_shadow(conn: Connection, decision_id: str) -> ShadowRecord | None:
    r = conn.execute(
        select(decision_shadows).where(decision_shadows.c.decision_id == decision_id)
    ).one_or_none()
    return None if r is None else _shadow(r)


def shadows_since(conn: Connection, since: datetime | None) -> list[ShadowRecord]:
    """Shadow records whose live decision is in the audit log (a decision that was never
    stored, e.g. an order refused as unfillable, has no live plan to compare with)."""
    q = select(decision_shadows).join(
        decisions, decisions.c.decision_id == decision_shadows.c.decision_id
    )
    if since is not None:
        q = q.where(decision_shadows.c.created_at >= since)
    return [_shadow(r) for r in conn.execute(q.order_by(decision_shadows.c.created_at))]
