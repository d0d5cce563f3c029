"""Typed errors mapped to RFC 9457 problem responses, so every failure says what to do next."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

PROBLEM_BASE = "https://routecast.dev/problems/"


class RoutecastError(Exception):
    """Base for errors that map to a problem response."""

    status: int = 500
    type: str = "internal"
    title: str = "Internal error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class UnknownSku(RoutecastError):
    status, type, title = 422, "unknown-sku", "Unknown SKU"


class UnknownChannel(RoutecastError):
    status, type, title = 422, "unknown-channel", "Unknown sales channel"


class ConflictingPreferences(RoutecastError):
    status, type, title = 422, "conflicting-preferences", "Order preferences contradict each other"


class NoShipmentBudget(RoutecastError):
    status, type, title = 409, "no-shipment-budget", "The order's shipment limit is used up"


class UnknownPickupNode(RoutecastError):
    status, type, title = 422, "unknown-pickup-node", "Pickup node does not exist"


class UnresolvableDestination(RoutecastError):
    status, type, title = 422, "unresolvable-destination", "Destination cannot be located"


class TooManyLines(RoutecastError):
    status, type, title = 422, "too-many-lines", "Order has too many lines"


class ModelsUnavailable(RoutecastError):
    status, type, title = 503, "models-unavailable", "Models are not loaded"


class NotReady(RoutecastError):
    status, type, title = 503, "not-ready", "Service is not ready"


class DecisionNotFound(RoutecastError):
    status, type, title = 404, "decision-not-found", "Decision not found"


class BadRequestMode(RoutecastError):
    status, type, title = 422, "mode-unavailable", "Routing mode cannot run"


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": PROBLEM_BASE + type_, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def install(app: FastAPI) -> None:
    @app.exception_handler(RoutecastError)
    async def _routecast(_: Request, exc: RoutecastError) -> JSONResponse:
        return problem(exc.status, exc.type, exc.title, exc.detail, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", ""),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] or "body" for e in errors)
        return problem(
            422,
            "validation",
            "Invalid request",
            f"invalid field(s): {fields}; fix them and send again",
            errors=errors,
        )
