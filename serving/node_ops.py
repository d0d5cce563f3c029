"""Node operations shared by the API and the console: find a node, show it, and change its
calendar (closures, opening hours, holidays) or daily capacity through one validated path."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from routing import calendar_from_dict
from routing.calendar import zone
from serving.catalogue import Catalogue
from serving.ledger import Ledger, NodeRecord
from serving.ledger.orders import end_of_local_day
from serving.problems import RoutecastError
from serving.schemas.operations import CalendarIn, CapacityIn


class NodeNotFound(RoutecastError):
    status, type, title = 404, "node-not-found", "Node not found"


class InvalidCalendar(RoutecastError):
    status, type, title = 422, "invalid-calendar", "Invalid node calendar"


def find_node(ledger: Ledger, node_id: str) -> NodeRecord:
    for rec in ledger.nodes():
        if rec.node_id == node_id:
            return rec
    raise NodeNotFound(f"node {node_id!r} is unknown; GET /v1/nodes lists nodes", node_id=node_id)


def node_view(rec: NodeRecord) -> dict[str, Any]:
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


def set_calendar(
    ledger: Ledger, catalogue: Catalogue, node_id: str, body: CalendarIn
) -> NodeRecord:
    """Replace the node's calendar; routing sees it at once."""
    doc = body.model_dump(mode="json", exclude_none=True)
    try:
        calendar_from_dict(doc)
    except ValueError as exc:
        raise InvalidCalendar(
            f"{exc}; see docs/formats.md for the calendar format", field="body"
        ) from exc
    rec = replace(find_node(ledger, node_id), calendar=[doc])
    ledger.upsert_nodes([rec])
    catalogue.reload_nodes()
    return rec


def set_capacity(
    ledger: Ledger, catalogue: Catalogue, node_id: str, body: CapacityIn
) -> NodeRecord:
    """Set the node's daily order capacity (0 = unlimited) and, when given, whether it is enabled."""
    rec = find_node(ledger, node_id)
    rec = replace(
        rec,
        daily_capacity=body.daily_capacity,
        enabled=rec.enabled if body.enabled is None else body.enabled,
    )
    ledger.upsert_nodes([rec])
    catalogue.reload_nodes()
    return rec


def calendar_doc(rec: NodeRecord) -> dict[str, Any]:
    """The node's stored calendar document (empty when it has none)."""
    return dict(rec.calendar[0]) if rec.calendar else {}


def closed_today(rec: NodeRecord, now: datetime, reason: str) -> dict[str, Any]:
    """The node's calendar document plus a closure from now to its next local midnight
    (closures that already ended are dropped)."""
    local = now.astimezone(zone(rec.timezone))
    midnight = end_of_local_day(now, rec.timezone)
    doc = calendar_doc(rec)
    closure = {
        "start": local.replace(tzinfo=None, microsecond=0).isoformat(),
        "end": midnight.replace(tzinfo=None).isoformat(),
        "reason": reason,
    }
    doc["closures"] = [*_ahead(doc.get("closures", []), now, rec.timezone), closure]
    return doc


def _ahead(closures: list[dict[str, Any]], now: datetime, timezone: str) -> list[dict[str, Any]]:
    """Closures that have not ended yet (ended ones would only fill the calendar's limit)."""
    tz = zone(timezone)
    kept = []
    for c in closures:
        try:
            end = datetime.fromisoformat(str(c["end"]))
        except (KeyError, ValueError):
            kept.append(c)  # not ours to judge: the calendar's validation reports it
            continue
        if (end if end.tzinfo else end.replace(tzinfo=tz)) > now:
            kept.append(c)
    return kept
