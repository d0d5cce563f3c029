"""Operations reports shared by the API and the console: an order's timeline, per-node status,
KPIs by day, channel and node type, and decision latency.

Reads go through ``Ledger`` (one read transaction each); the arithmetic here is plain Python
over bounded row sets, off the routing path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from serving.catalogue import node_calendar
from serving.ledger import Ledger, NodeRecord
from serving.ledger.promise_outcomes import delivered_on_time, leg_promise, local_date
from serving.ledger.reporting import OrderFacts
from serving.metrics import REQUEST_SECONDS
from serving.shadow import parse_since

#: The status an event moves the order (or one of its parcels) to, as tracking shows it.
TIMELINE_STATUS = {
    "order.placed": "placed",
    "order.held": "held",
    "order.released": "released",
    "allocation.rejected": "rejected",
    "order.rerouted": "rerouted",
    "order.line_cancelled": "line_cancelled",
    "order.cancelled": "cancelled",
    "shipment.created": "shipped",
    "delivery.confirmed": "delivered",
    "return.created": "return_requested",
    "return.received": "returned",
}

#: KPIs read at most this many orders of the window (the newest); the report says so.
KPI_ORDER_LIMIT = 20_000


def order_timeline(ledger: Ledger, order_id: str) -> list[dict[str, Any]]:
    """The order's state changes from its events (what other systems were told), in order."""
    return [
        {
            "sequence": e.sequence,
            "at": e.created_at.isoformat(),
            "status": TIMELINE_STATUS[e.type],
            "event_id": e.event_id,
            "event": e.type,
            "shipment_id": e.payload["data"].get("shipment_id"),
            "node_id": e.payload["data"].get("node_id"),
            "reason": e.payload["data"].get("reason"),
        }
        for e in ledger.events(order_id=order_id, limit=500)
        if e.type in TIMELINE_STATUS
    ]


def shipped_late(
    promise: Mapping[str, Any] | None, node_id: str, shipped_at: datetime
) -> bool | None:
    """Whether a parcel left after its leg's ``ship_by``; ``None`` without a promise."""
    leg = leg_promise(promise, node_id)
    if leg is None or promise is None:
        return None
    return local_date(shipped_at, promise.get("timezone")) > date.fromisoformat(str(leg["ship_by"]))


# -- KPIs ---------------------------------------------------------------------------------


@dataclass
class _Tally:
    orders: int = 0
    allocations: int = 0
    rejected: int = 0
    rerouted: int = 0
    planned_shipments: int = 0
    cost: float = 0.0
    promised: int = 0
    degraded: int = 0
    delivered: int = 0
    on_time: int = 0
    parcels: int = 0
    late_ship: int = 0

    def row(self, key: str) -> dict[str, Any]:
        def rate(num: float, den: float) -> float | None:
            return round(num / den, 4) if den else None

        return {
            "key": key,
            "orders": self.orders,
            "on_time_rate": rate(self.on_time, self.delivered),
            "delivered_parcels": self.delivered,
            "late_ship_rate": rate(self.late_ship, self.parcels),
            "rejection_rate": rate(self.rejected, self.allocations),
            "reroute_rate": rate(self.rerouted, self.orders),
            "shipments_per_order": rate(self.planned_shipments, self.orders),
            "cost_per_order": rate(self.cost, self.orders),
            "promise_coverage": rate(self.promised, self.orders),
            "degraded_share": rate(self.degraded, self.orders),
        }


def _order_tally(t: _Tally, f: OrderFacts) -> None:
    t.orders += 1
    t.allocations += len(f.allocations)
    t.rejected += sum(1 for _, status, _ in f.allocations if status == "rejected")
    t.rerouted += 1 if f.rejections > 0 else 0
    t.planned_shipments += f.planned_shipments or 0
    t.cost += f.total_cost or 0.0
    t.promised += 1 if f.promise else 0
    t.degraded += 1 if f.degraded else 0


def _parcel_tally(
    t: _Tally,
    promise: Mapping[str, Any] | None,
    node_id: str,
    shipped_at: datetime,
    delivered_at: datetime | None,
) -> None:
    t.parcels += 1
    t.late_ship += 1 if shipped_late(promise, node_id, shipped_at) else 0
    if delivered_at is not None:
        ok = delivered_on_time(promise, node_id, delivered_at)
        if ok is not None:
            t.delivered += 1
            t.on_time += 1 if ok else 0


def kpis(
    facts: Iterable[OrderFacts],
    node_types: Mapping[str, str],
    *,
    since: datetime,
    limit: int = KPI_ORDER_LIMIT,
) -> dict[str, Any]:
    """On-time rate against the promise, rejection and reroute rate, shipments and cost per
    order, promise coverage and degraded share: overall, by day (UTC), by channel and by
    node type (the last counts allocations and parcels at nodes of that type), and the
    decision latency the stored decisions measured."""
    overall = _Tally()
    by_day: dict[str, _Tally] = defaultdict(_Tally)
    by_channel: dict[str, _Tally] = defaultdict(_Tally)
    by_type: dict[str, _Tally] = defaultdict(_Tally)
    latencies: list[float] = []
    n = 0
    for f in facts:
        n += 1
        groups = (
            overall,
            by_day[f.created_at.astimezone(UTC).date().isoformat()],
            by_channel[f.channel or "unknown"],
        )
        for t in groups:
            _order_tally(t, f)
        for node_id, shipped_at, delivered_at in f.shipments:
            for t in (*groups, by_type[node_types.get(node_id, "unknown")]):
                _parcel_tally(t, f.promise, node_id, shipped_at, delivered_at)
        for node_id, status, _ in f.allocations:
            t = by_type[node_types.get(node_id, "unknown")]
            t.allocations += 1
            t.rejected += 1 if status == "rejected" else 0
        for a in f.planned:
            t = by_type[node_types.get(str(a.get("node_id")), "unknown")]
            t.cost += float(a.get("shipping") or 0.0) + float(a.get("handling") or 0.0)
        if f.timings_ms:
            latencies.append(sum(float(v) for v in f.timings_ms.values()))
    return {
        "since": since.isoformat(),
        "orders": n,
        "truncated": n >= limit,
        "overall": overall.row("all"),
        "by_day": [by_day[k].row(k) for k in sorted(by_day)],
        "by_channel": [by_channel[k].row(k) for k in sorted(by_channel)],
        "by_node_type": [
            {
                "key": k,
                "allocations": by_type[k].allocations,
                "rejection_rate": by_type[k].row(k)["rejection_rate"],
                "parcels": by_type[k].parcels,
                "late_ship_rate": by_type[k].row(k)["late_ship_rate"],
                "on_time_rate": by_type[k].row(k)["on_time_rate"],
                "shipping_handling_cost": round(by_type[k].cost, 2),
            }
            for k in sorted(by_type)
        ],
        "decision_latency_ms": _quantiles(latencies),
        "http_latency_ms": http_latency(),
    }


def _quantiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "max": None}
    xs = sorted(values)

    def q(p: float) -> float:
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 3)

    return {
        "n": len(xs),
        "mean": round(sum(xs) / len(xs), 3),
        "p50": q(0.5),
        "p95": q(0.95),
        "max": round(xs[-1], 3),
    }


#: The routes whose latency is the decision's, as the HTTP histogram names them.
DECISION_ROUTES = (("POST", "/v1/orders"), ("POST", "/v1/route"))


def http_latency() -> list[dict[str, Any]]:
    """Request counts and mean latency of the decision routes, from this process's Prometheus
    histogram (since the process started)."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for metric in REQUEST_SECONDS.collect():
        for s in metric.samples:
            key = (s.labels.get("method", ""), s.labels.get("route", ""))
            if key not in DECISION_ROUTES or not s.labels.get("status", "").startswith("2"):
                continue
            if s.name.endswith("_count"):
                sums[key][0] += s.value
            elif s.name.endswith("_sum"):
                sums[key][1] += s.value
    return [
        {
            "route": f"{m} {r}",
            "requests": int(sums[(m, r)][0]),
            "mean_ms": round(1000 * sums[(m, r)][1] / sums[(m, r)][0], 3)
            if sums[(m, r)][0]
            else None,
        }
        for m, r in DECISION_ROUTES
    ]


def kpi_since(text: str) -> datetime:
    """The KPI window's start from an ISO time or an age (``7d``); empty means all time.
    Raises ``ValueError`` naming the accepted forms."""
    return parse_since(text) or datetime(1970, 1, 1, tzinfo=UTC)


def kpi_report(ledger: Ledger, since: datetime, *, limit: int = KPI_ORDER_LIMIT) -> dict[str, Any]:
    node_types = {n.node_id: n.node_type for n in ledger.nodes()}
    return kpis(ledger.order_facts(since, limit=limit), node_types, since=since, limit=limit)


# -- nodes --------------------------------------------------------------------------------


def node_status(ledger: Ledger, now: datetime, *, days: int = 7) -> list[dict[str, Any]]:
    """Per node: stock, today's orders against capacity, and over the last ``days`` the
    rejection rate of its allocations and the share of its parcels that left after the
    promised ship-by date."""
    since = now - timedelta(days=days)
    nodes = ledger.nodes()
    activity = ledger.node_activity(since)
    today = ledger.orders_today(every_node=True)
    late = _late_ship_by_node(ledger, since)
    out = []
    for rec in nodes:
        act = activity.get(rec.node_id)
        parcels, late_n = late.get(rec.node_id, (0, 0))
        out.append(
            {
                "node": rec,
                "node_id": rec.node_id,
                "node_type": rec.node_type,
                "enabled": rec.enabled,
                "closed_now": closed_now(rec, now),
                "skus": act.skus if act else 0,
                "on_hand": act.on_hand if act else 0,
                "reserved": act.reserved if act else 0,
                "available": act.available if act else 0,
                "orders_today": today.get(rec.node_id, 0),
                "daily_capacity": rec.daily_capacity,
                "load": round(today.get(rec.node_id, 0) / rec.daily_capacity, 4)
                if rec.daily_capacity
                else None,
                "allocations": act.allocations if act else 0,
                "rejection_rate": round(act.rejected / act.allocations, 4)
                if act and act.allocations
                else None,
                "parcels": parcels,
                "late_ship_rate": round(late_n / parcels, 4) if parcels else None,
            }
        )
    return out


def _late_ship_by_node(ledger: Ledger, since: datetime) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in ledger.order_facts(since, limit=KPI_ORDER_LIMIT, shipped_only=True):
        for node_id, shipped_at, _ in f.shipments:
            late = shipped_late(f.promise, node_id, shipped_at)
            if late is None:
                continue
            counts[node_id][0] += 1
            counts[node_id][1] += 1 if late else 0
    return {k: (v[0], v[1]) for k, v in counts.items()}


def closed_now(rec: NodeRecord, now: datetime) -> str | None:
    """Why the node cannot ship right now (disabled, closed after a rejection, a planned
    closure), or ``None``."""
    if not rec.enabled:
        return "disabled"
    cal = node_calendar(rec)
    return None if cal is None else cal.status(now, rec.timezone, require_open_now=False)
