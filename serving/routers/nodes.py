"""Operations: node calendars (planned closures, opening hours, holidays) and daily capacity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.bounds import PathId
from serving.deps import CatalogueDep, LedgerDep, PoliciesDep, SettingsDep
from serving.node_ops import node_view, set_calendar, set_capacity
from serving.schemas.operations import CalendarIn, CapacityIn
from serving.security import AdminScope

router = APIRouter(prefix="/v1/nodes", tags=["nodes"])


@router.get("")
def list_nodes(ledger: LedgerDep, _: AdminScope) -> list[dict[str, Any]]:
    return [node_view(r) for r in ledger.nodes()]


@router.put("/{node_id}/calendar")
def put_calendar(
    node_id: PathId, body: CalendarIn, ledger: LedgerDep, catalogue: CatalogueDep, _: AdminScope
) -> dict[str, Any]:
    return node_view(set_calendar(ledger, catalogue, node_id, body))


@router.put("/{node_id}/capacity")
def put_capacity(
    node_id: PathId, body: CapacityIn, ledger: LedgerDep, catalogue: CatalogueDep, _: AdminScope
) -> dict[str, Any]:
    return node_view(set_capacity(ledger, catalogue, node_id, body))


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
