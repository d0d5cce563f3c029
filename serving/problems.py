"""Typed errors mapped to RFC 9457 problem responses, so every failure says what to do next."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://routecast.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
#: Seconds a client should wait before retrying after a transient database failure.
DB_RETRY_AFTER_S = 2
log = logging.getLogger("routecast.problems")


class Problem(BaseModel):
    """RFC 9457 problem details; ``errors`` lists invalid fields on a 422."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


class RoutecastError(Exception):
    """Base for errors that map to a problem response."""

    status: int = 500
    type: str = "internal"
    title: str = "Internal error"
    #: Sent as ``Retry-After`` (seconds) when the failure is transient.
    retry_after: int | None = None

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
    retry_after = 5


class NotReady(RoutecastError):
    status, type, title = 503, "not-ready", "Service is not ready"
    retry_after = 5


class PayloadTooLarge(RoutecastError):
    status, type, title = 413, "payload-too-large", "Request body too large"


class DecisionNotFound(RoutecastError):
    status, type, title = 404, "decision-not-found", "Decision not found"


class InvalidSince(RoutecastError):
    status, type, title = 422, "invalid-since", "Invalid time bound"


class BadRequestMode(RoutecastError):
    status, type, title = 422, "mode-unavailable", "Routing mode cannot run"


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    *,
    retry_after: int | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": PROBLEM_BASE + type_, "title": title, "status": status, "detail": detail}
    body.update(extra)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def error_problem(exc: RoutecastError) -> JSONResponse:
    return problem(
        exc.status, exc.type, exc.title, exc.detail, retry_after=exc.retry_after, **exc.extra
    )


def database_problem(exc: Exception) -> JSONResponse:
    """A database failure as a problem that names no SQL, table or driver message.

    Operational failures (connection refused, administrator shutdown, a failover, a busy or
    read-only file, a full disk, an exhausted pool) are transient for the client: 503 with
    ``Retry-After``. Anything else the database refused is a bug on our side: 500.
    """
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        log.warning("database unavailable: %s (sqlstate %s)", type(exc).__name__, sqlstate)
        return problem(
            503,
            "database-unavailable",
            "Database unavailable",
            "the inventory database did not answer; nothing was changed by this request "
            "unless a retry with the same Idempotency-Key says so. Retry shortly.",
            retry_after=DB_RETRY_AFTER_S,
        )
    log.error("database refused a statement (sqlstate %s)", sqlstate, exc_info=exc)
    return internal_problem()


def internal_problem() -> JSONResponse:
    return problem(
        500, "internal", "Internal error", "an unexpected error occurred; it has been logged"
    )


def _problem_responses() -> dict[int | str, dict[str, Any]]:
    """Problem answers every versioned endpoint may give, for the OpenAPI document."""
    described = {
        401: "API key missing, invalid or revoked",
        403: "API key lacks the scope",
        404: "Unknown resource",
        409: "Conflict with the current state (stock, order state, idempotency key in flight)",
        413: "Request body too large",
        422: "Invalid request: `errors` names each field",
        503: "Database, models or network unavailable; retry after `Retry-After` seconds",
    }
    return {
        code: {
            "description": text,
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for code, text in described.items()
    }


PROBLEM_RESPONSES = _problem_responses()


def install(app: FastAPI) -> None:
    @app.exception_handler(RoutecastError)
    async def _routecast(_: Request, exc: RoutecastError) -> JSONResponse:
        return error_problem(exc)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        return database_problem(exc)

    @app.exception_handler(PoolTimeout)
    async def _pool(_: Request, exc: PoolTimeout) -> JSONResponse:
        return database_problem(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body (e.g. not UTF-8)
            return problem(
                422,
                "validation",
                "Invalid request",
                "invalid field(s): body; send a UTF-8 JSON document",
                errors=[{"field": "body", "message": str(exc.detail)}],
            )
        titles = {404: "Not found", 405: "Method not allowed"}
        response = problem(
            exc.status_code,
            "http-" + str(exc.status_code),
            titles.get(exc.status_code, "HTTP error"),
            str(exc.detail),
        )
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return internal_problem()

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
