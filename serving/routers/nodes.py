"""Operations: node calendars (planned closures, opening hours, holidays) and daily capacity."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter

from routing import calendar_from_dict
from serving.bounds import PathId
from serving.deps import CatalogueDep, LedgerDep, PoliciesDep, SettingsDep
from serving.ledger import Ledger, NodeRecord
from serving.problems import RoutecastError
from serving.schemas.operations import CalendarIn, CapacityIn
from serving.security import AdminScope

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


class NodeNotFound(RoutecastError):
    status, type, title = 404, "node-not-found", "Node not found"


class InvalidCalendar(RoutecastError):
    status, type, title = 422, "invalid-calendar", "Invalid node calendar"


def _node(ledger: Ledger, node_id: str) -> NodeRecord:
    for rec in ledger.nodes():
        if rec.node_id == node_id:
            return rec
    raise NodeNotFound(f"node {node_id!r} is unknown; GET /v1/nodes lists nodes", node_id=node_id)


def _view(rec: NodeRecord) -> dict[str, Any]:
    return {
        "node_id": rec.node_id,
        "node_type": rec.node_type,
        "enabled": rec.enabled,
        "priority": rec.priority,
        "timezone": rec.timezone,
        "daily_capacity": rec.daily_capacity,
        "closed_until": rec.closed_until.isoformat() if rec.closed_until else None,
        "calendar": rec.calendar[0] if rec.calendar else None,
    }


@router.get("")
def list_nodes(ledger: LedgerDep, _: AdminScope) -> list[dict[str, Any]]:
    return [_view(r) for r in ledger.nodes()]


@router.put("/{node_id}/calendar")
def put_calendar(
    node_id: PathId, body: CalendarIn, ledger: LedgerDep, catalogue: CatalogueDep, _: AdminScope
) -> dict[str, Any]:
    doc = body.model_dump(mode="json", exclude_none=True)
    try:
        calendar_from_dict(doc)
    except ValueError as exc:
        raise InvalidCalendar(
            f"{exc}; see docs/formats.md for the calendar format", field="body"
        ) from exc
    rec = replace(_node(ledger, node_id), calendar=[doc])
    ledger.upsert_nodes([rec])
    catalogue.reload_nodes()
    return _view(rec)


@router.put("/{node_id}/capacity")
def put_capacity(
    node_id: PathId, body: CapacityIn, ledger: LedgerDep, catalogue: CatalogueDep, _: AdminScope
) -> dict[str, Any]:
    rec = _node(ledger, node_id)
    rec = replace(
        rec,
        daily_capacity=body.daily_capacity,
        enabled=rec.enabled if body.enabled is None else body.enabled,
    )
    ledger.upsert_nodes([rec])
    catalogue.reload_nodes()
    return _view(rec)


policy_router = APIRouter(prefix="/v1/policy", tags=["policy"])


@policy_router.get("")
def get_policy(settings: SettingsDep, policies: PoliciesDep, _: AdminScope) -> dict[str, Any]:
    """The routing policy in force (file named by ROUTECAST_POLICY_FILE, reloaded on change)."""
    from routing import policy_to_dict

    return {
        "source": str(settings.policy_file) if settings.policy_file else "built-in default",
        "error": policies.error,
        "policy": policy_to_dict(policies.policy),
    }
