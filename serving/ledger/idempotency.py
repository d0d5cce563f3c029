"""Idempotency keys: claim before routing, complete in the reservation's transaction.

A key moves ``(absent) -> in_flight -> done``. ``done`` rows hold the response to replay.
A failed placement deletes its ``in_flight`` claim instead of storing the failure: a failed
order reserved nothing, and the same key may succeed once stock arrives. Claims left behind
by a crashed worker are taken over after ``stale_after``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from serving.ledger.errors import IdempotencyInFlight, IdempotencyMismatch
from serving.ledger.records import IdemState
from serving.ledger.tables import idempotency_keys

#: ``complete`` reads the key's row itself unless the caller passes the row it holds.
_UNREAD = object()

# Built once: every placement claims and completes a key (building the expressions per call
# showed in the order profile).
_k = idempotency_keys
_ROW = select(_k).where(_k.c.key == bindparam("k_key"))
_LOCK_ROW = _ROW.with_for_update()
_INSERT = _k.insert()
_TOUCH = (
    update(_k)
    .where(_k.c.key == bindparam("k_key"))
    .values(updated_at=bindparam("v_at", type_=_k.c.updated_at.type))
)
_DONE = (
    update(_k)
    .where(_k.c.key == bindparam("k_key"))
    .values(
        status="done",
        response=bindparam("v_response", type_=_k.c.response.type),
        http_status=bindparam("v_http_status", type_=_k.c.http_status.type),
        order_id=bindparam("v_order_id", type_=_k.c.order_id.type),
        updated_at=bindparam("v_at", type_=_k.c.updated_at.type),
    )
)
_RELEASE = delete(_k).where(
    _k.c.key == bindparam("k_key"),
    _k.c.request_hash == bindparam("k_hash"),
    _k.c.status == "in_flight",
)


def _row(conn: Connection, key: str) -> Any:
    return conn.execute(_LOCK_ROW, {"k_key": key}).one_or_none()


def claim(
    conn: Connection,
    key: str,
    request_hash: str,
    *,
    at: datetime,
    stale_after: timedelta,
) -> IdemState:
    """Mark the key in flight, or say why not (replay, mismatch, in flight)."""
    row = _row(conn, key)
    if row is None:
        conn.execute(
            _INSERT,
            {
                "key": key,
                "request_hash": request_hash,
                "status": "in_flight",
                "created_at": at,
                "updated_at": at,
            },
        )
        return IdemState(key=key, state="claimed")
    if row.request_hash != request_hash:
        raise IdempotencyMismatch(key)
    if row.status == "done":
        return IdemState(
            key=key,
            state="replay",
            response=row.response,
            http_status=row.http_status,
            order_id=row.order_id,
        )
    if row.updated_at > at - stale_after:
        raise IdempotencyInFlight(key)
    conn.execute(_TOUCH, {"k_key": key, "v_at": at})
    return IdemState(key=key, state="claimed")


def complete(
    conn: Connection,
    key: str,
    request_hash: str,
    *,
    response: dict[str, Any] | None,
    http_status: int,
    order_id: str | None,
    at: datetime,
    current: Any = _UNREAD,
) -> None:
    """Store the response under the key (insert if the caller skipped ``claim``).

    ``current`` is the key's row as the caller already read it locked in this transaction
    (``lookup(..., lock=True)``), saving a round trip while stock rows are locked."""
    row = _row(conn, key) if current is _UNREAD else current
    if row is None:
        conn.execute(
            _INSERT,
            {
                "key": key,
                "request_hash": request_hash,
                "status": "done",
                "response": response,
                "http_status": http_status,
                "order_id": order_id,
                "created_at": at,
                "updated_at": at,
            },
        )
        return
    if row.request_hash != request_hash:
        raise IdempotencyMismatch(key)
    conn.execute(
        _DONE,
        {
            "k_key": key,
            "v_response": response,
            "v_http_status": http_status,
            "v_order_id": order_id,
            "v_at": at,
        },
    )


def release(conn: Connection, key: str, request_hash: str) -> bool:
    """Drop an in-flight claim so the key can be retried; ``done`` keys are never dropped."""
    return conn.execute(_RELEASE, {"k_key": key, "k_hash": request_hash}).rowcount > 0


def lookup(conn: Connection, key: str, *, lock: bool = False) -> Any:
    if lock:
        return _row(conn, key)
    return conn.execute(_ROW, {"k_key": key}).one_or_none()
