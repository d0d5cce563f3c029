"""Prometheus metrics: latency per endpoint, decisions by mode, degraded answers, inventory events."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "routecast_http_request_seconds",
    "HTTP request latency by route template and status",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
DECISIONS = Counter(
    "routecast_decisions_total",
    "Routing decisions by mode",
    ["mode", "shippable"],
    registry=REGISTRY,
)
DEGRADED = Counter(
    "routecast_degraded_total", "Decisions routed in degraded (cost) mode", registry=REGISTRY
)
RESERVATIONS = Counter(
    "routecast_reservations_total", "Orders reserved, by outcome", ["outcome"], registry=REGISTRY
)
AUDIT_FAILURES = Counter(
    "routecast_audit_failures_total",
    "Decision audit records that could not be written after retries (logged with their id)",
    registry=REGISTRY,
)
REJECTIONS = Counter(
    "routecast_rejections_total",
    "Node rejections reported, by reason",
    ["reason"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "routecast_deliveries_total",
    "Delivery confirmations received, by outcome (applied, duplicate, already_delivered)",
    ["outcome"],
    registry=REGISTRY,
)
RETURN_UNITS = Counter(
    "routecast_return_units_total",
    "Returned units, by stage (requested, resellable, damaged)",
    ["stage"],
    registry=REGISTRY,
)
REROUTES = Counter(
    "routecast_reroutes_total",
    "Reroutes after a rejection, by outcome",
    ["outcome"],
    registry=REGISTRY,
)

SHADOW = Counter(
    "routecast_shadow_total",
    "Shadow plans, by outcome (stored, skipped, dropped when the queue is full, error)",
    ["outcome"],
    registry=REGISTRY,
)

# Promise monitoring over the window (``serving/promise_monitor.py``), from confirmed shipments.
PROMISE_DELIVERIES = Gauge(
    "routecast_promise_deliveries",
    "Confirmed shipments in the promise monitor's window",
    registry=REGISTRY,
)
PROMISE_COVERAGE = Gauge(
    "routecast_promise_coverage",
    "Share of confirmed shipments delivered by their deliver_by date",
    registry=REGISTRY,
)
PROMISE_P50_MAE = Gauge(
    "routecast_promise_p50_mae_days",
    "Mean absolute error of the promised P50 date, in days",
    registry=REGISTRY,
)
PROMISE_NODE_COVERAGE = Gauge(
    "routecast_promise_node_coverage",
    "Share delivered by deliver_by, per shipping node",
    ["node_id"],
    registry=REGISTRY,
)
PROMISE_NODE_P50_MAE = Gauge(
    "routecast_promise_node_p50_mae_days",
    "P50 date error (MAE, days), per shipping node",
    ["node_id"],
    registry=REGISTRY,
)
PROMISE_LANE_COVERAGE = Gauge(
    "routecast_promise_lane_coverage",
    "Share delivered by deliver_by, per lane (node → destination region)",
    ["node_id", "dest_region"],
    registry=REGISTRY,
)
PROMISE_LANE_P50_MAE = Gauge(
    "routecast_promise_lane_p50_mae_days",
    "P50 date error (MAE, days), per lane",
    ["node_id", "dest_region"],
    registry=REGISTRY,
)
PROMISE_LANE_WIDEN = Gauge(
    "routecast_promise_lane_p90_widening_days",
    "Days added to the lane's P90 after its coverage fell below target",
    ["node_id", "dest_region"],
    registry=REGISTRY,
)


class _Timing:
    """Request latency by route template and status, as a plain ASGI middleware: Starlette's
    ``BaseHTTPMiddleware`` runs every request through an extra task and memory streams, and
    matching the path against every route again showed in the request profile. The router
    leaves the route it matched in the scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None)
            REQUEST_SECONDS.labels(
                scope["method"], route if isinstance(route, str) else "unmatched", str(status)
            ).observe(time.perf_counter() - t0)


def install(app: FastAPI) -> None:
    app.add_middleware(_Timing)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def record_decision(answer: dict[str, object]) -> None:
    DECISIONS.labels(str(answer.get("mode")), str(bool(answer.get("shippable"))).lower()).inc()
    if answer.get("degraded"):
        DEGRADED.inc()
