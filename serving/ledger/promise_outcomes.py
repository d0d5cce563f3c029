"""Promise outcomes: each confirmed shipment against the promise its order was given, and the
per-lane P90 widening measured from them (the rule is ``routing.promise.conformal_widening``).

A shipment is checked against its own leg of the promise (the node's ``deliver_by``); a node
the promise does not name (a reroute after the answer) is checked against the order's date.
Dates are compared at the destination, in the promise's time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from routing.calendar import zone
from serving.ledger.tables import lane_widening, promise_outcomes

UNKNOWN_REGION = "??"


@dataclass(frozen=True, slots=True)
class PromiseOutcome:
    shipment_id: str
    order_id: str
    node_id: str
    dest_region: str
    deliver_p50: date
    deliver_by: date
    delivered_on: date
    days_late: int
    p50_error_days: int
    widened_days: float
    delivery_model: str | None
    delivered_at: datetime

    @property
    def on_time(self) -> bool:
        return self.days_late <= 0


@dataclass(frozen=True, slots=True)
class LaneWidening:
    node_id: str
    dest_region: str
    delivery_model: str
    widen_days: float
    coverage: float
    deliveries: int
    updated_at: datetime


def leg_promise(promise: Mapping[str, Any] | None, node_id: str) -> dict[str, Any] | None:
    """The promise of the parcel leaving ``node_id`` (``None`` when the plan names no leg there)."""
    for leg in (promise or {}).get("shipments") or []:
        if leg.get("node_id") == node_id:
            return dict(leg)
    return None


def local_date(at: datetime, timezone: str | None) -> date:
    """``at`` as a calendar date at the destination (UTC when the zone is missing or unknown)."""
    try:
        return at.astimezone(zone(timezone or "UTC")).date()
    except ValueError:
        return at.astimezone(UTC).date()


def delivered_on_time(
    promise: Mapping[str, Any] | None, node_id: str, delivered_at: datetime
) -> bool | None:
    """Whether a parcel arrived by its ``deliver_by`` — its own leg's, else the order's (a reroute
    to a node the promise does not name); ``None`` when nothing was promised for it."""
    if not promise:
        return None
    source = leg_promise(promise, node_id) or promise
    if not source.get("deliver_by"):
        return None
    by = date.fromisoformat(str(source["deliver_by"]))
    return local_date(delivered_at, promise.get("timezone")) <= by


def outcome_of(
    plan: Mapping[str, Any] | None,
    shipment_id: str,
    order_id: str,
    node_id: str,
    delivered_at: datetime,
) -> PromiseOutcome | None:
    """The outcome of one delivered shipment, or ``None`` when its order carries no full promise."""
    promise = ((plan or {}).get("decision") or {}).get("promise")
    if not promise:
        return None
    leg = leg_promise(promise, node_id)
    source = leg or promise
    if not (source.get("deliver_p50") and source.get("deliver_by") and promise.get("timezone")):
        return None  # a promise without both dates (older orders, imported plans) is not scored
    p50 = date.fromisoformat(source["deliver_p50"])
    by = date.fromisoformat(source["deliver_by"])
    on = local_date(delivered_at, promise["timezone"])
    return PromiseOutcome(
        shipment_id=shipment_id,
        order_id=order_id,
        node_id=node_id,
        dest_region=str(promise.get("dest_region") or UNKNOWN_REGION),
        deliver_p50=p50,
        deliver_by=by,
        delivered_on=on,
        days_late=(on - by).days,
        p50_error_days=(on - p50).days,
        widened_days=float((leg or {}).get("p90_widening_days") or 0.0),
        delivery_model=promise.get("delivery_model"),
        delivered_at=delivered_at,
    )


def record(conn: Connection, outcome: PromiseOutcome) -> None:
    conn.execute(
        promise_outcomes.insert().values(
            shipment_id=outcome.shipment_id,
            order_id=outcome.order_id,
            node_id=outcome.node_id,
            dest_region=outcome.dest_region,
            deliver_p50=outcome.deliver_p50.isoformat(),
            deliver_by=outcome.deliver_by.isoformat(),
            delivered_on=outcome.delivered_on.isoformat(),
            days_late=outcome.days_late,
            p50_error_days=outcome.p50_error_days,
            widened_days=outcome.widened_days,
            delivery_model=outcome.delivery_model,
            delivered_at=outcome.delivered_at,
        )
    )


def outcomes(
    conn: Connection,
    since: datetime | None = None,
    *,
    lanes: Iterable[tuple[str, str]] | None = None,
    delivery_model: str | None = None,
    shipment_ids: Iterable[str] | None = None,
) -> list[PromiseOutcome]:
    """Outcomes delivered at or after ``since`` (all when ``None``), oldest first; optionally
    of some lanes, one delivery model version or some shipments only."""
    t = promise_outcomes
    query = select(t).order_by(t.c.delivered_at, t.c.shipment_id)
    if shipment_ids is not None:
        query = query.where(t.c.shipment_id.in_(sorted(set(shipment_ids))))
    if since is not None:
        query = query.where(t.c.delivered_at >= since)
    if delivery_model is not None:
        query = query.where(t.c.delivery_model == delivery_model)
    wanted = None if lanes is None else set(lanes)
    if wanted is not None:
        query = query.where(t.c.node_id.in_(sorted({n for n, _ in wanted})))
    out = []
    for r in conn.execute(query):
        if wanted is not None and (r.node_id, r.dest_region) not in wanted:
            continue
        out.append(
            PromiseOutcome(
                shipment_id=r.shipment_id,
                order_id=r.order_id,
                node_id=r.node_id,
                dest_region=r.dest_region,
                deliver_p50=date.fromisoformat(r.deliver_p50),
                deliver_by=date.fromisoformat(r.deliver_by),
                delivered_on=date.fromisoformat(r.delivered_on),
                days_late=int(r.days_late),
                p50_error_days=int(r.p50_error_days),
                widened_days=float(r.widened_days),
                delivery_model=r.delivery_model,
                delivered_at=r.delivered_at,
            )
        )
    return out


def widenings(conn: Connection, delivery_model: str | None = None) -> list[LaneWidening]:
    t = lane_widening
    query = select(t).order_by(t.c.node_id, t.c.dest_region)
    if delivery_model is not None:
        query = query.where(t.c.delivery_model == delivery_model)
    return [
        LaneWidening(
            r.node_id,
            r.dest_region,
            r.delivery_model,
            float(r.widen_days),
            float(r.coverage),
            int(r.deliveries),
            r.updated_at,
        )
        for r in conn.execute(query)
    ]


def set_widening(conn: Connection, w: LaneWidening) -> None:
    t = lane_widening
    conn.execute(
        delete(t).where(
            t.c.node_id == w.node_id,
            t.c.dest_region == w.dest_region,
            t.c.delivery_model == w.delivery_model,
        )
    )
    conn.execute(
        t.insert().values(
            node_id=w.node_id,
            dest_region=w.dest_region,
            delivery_model=w.delivery_model,
            widen_days=w.widen_days,
            coverage=w.coverage,
            deliveries=w.deliveries,
            updated_at=w.updated_at,
        )
    )


def clear_widening(conn: Connection) -> int:
    """Forget every lane's widening (a retrained model starts from its own quantiles)."""
    return int(conn.execute(delete(lane_widening)).rowcount or 0)
