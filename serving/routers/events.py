"""Events: read the outbox (what happened, and whether each webhook got it) and replay one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from serving.bounds import MAX_INT4, PathLongId, QueryLongId, Text
from serving.deps import RuntimeDep
from serving.ledger.outbox import EventView
from serving.ledger.records import EventType
from serving.problems import RoutecastError
from serving.security import AdminScope, OrdersScope

router = APIRouter(prefix="/v1/events", tags=["events"])


class EventNotFound(RoutecastError):
    status, type, title = 404, "event-not-found", "Event not found"


class UnknownEndpoint(RoutecastError):
    status, type, title = 422, "unknown-endpoint", "Webhook endpoint not configured"


class RedeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoints: list[Text] | None = Field(
        max_length=100,
        default=None,
        description="Endpoint names to send to again; default every configured one.",
    )


def event_json(e: EventView) -> dict[str, Any]:
    return {
        "id": e.event_id,
        "type": e.type,
        "subject": e.subject,
        "sequence": e.sequence,
        "order_id": e.order_id,
        "position": e.position,
        "created_at": e.created_at.isoformat(),
        "payload": e.payload,
        "deliveries": [
            {
                **asdict(d),
                "next_attempt_at": d.next_attempt_at.isoformat(),
                "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
            }
            for d in e.deliveries
        ],
    }


@router.get("", summary="Events in commit order, with each webhook delivery's state")
def list_events(
    runtime: RuntimeDep,
    _: OrdersScope,
    order_id: QueryLongId | None = None,
    type: Annotated[EventType | None, Query()] = None,
    status: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_INT4, description="Page: events after this position")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    found = runtime.ledger.events(
        order_id=order_id, type_=type, delivery_status=status, after=after, limit=limit
    )
    return {
        "events": [event_json(e) for e in found],
        "next_after": found[-1].position if len(found) == limit else None,
    }


@router.get("/{event_id}")
def get_event(event_id: PathLongId, runtime: RuntimeDep, _: OrdersScope) -> dict[str, Any]:
    found = runtime.ledger.get_event(event_id)
    if found is None:
        raise EventNotFound(f"no event {event_id!r}; list them with GET /v1/events")
    return event_json(found)


@router.post("/{event_id}/redeliver", summary="Queue an event again (e.g. after a dead letter)")
def redeliver(
    event_id: PathLongId, runtime: RuntimeDep, _: AdminScope, body: RedeliverIn | None = None
) -> dict[str, Any]:
    configured = [e.name for e in runtime.settings.webhooks]
    wanted = configured if body is None or body.endpoints is None else body.endpoints
    unknown = sorted(set(wanted) - set(configured))
    if unknown or not wanted:
        raise UnknownEndpoint(
            f"endpoints {unknown or wanted} are not configured; configured: {configured} "
            "(set ROUTECAST_WEBHOOKS)",
            field="endpoints",
        )
    found = runtime.ledger.redeliver(event_id, wanted)
    if found is None:
        raise EventNotFound(f"no event {event_id!r}; list them with GET /v1/events")
    runtime.dispatcher.wake()
    return event_json(found)
