"""Who may call what: authentication before the body is read, scopes as FastAPI dependencies.

``RequestGuard`` is a plain ASGI middleware in front of the app. It refuses a body over the
size limit from its ``Content-Length`` (or while streaming a chunked one) and authenticates
every ``/v1/`` request from its headers alone, so an anonymous 300 MB upload costs one
header check, not a parse. Routers then check the scope (403) with ``require``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.auth import Scope as KeyScope
from serving.auth import StoredKey, allows, authenticate, parse_key_id
from serving.deps import SettingsDep, request_only
from serving.problems import PayloadTooLarge, RoutecastError, database_problem, error_problem
from serving.settings import Settings

PROTECTED_PREFIX = "/v1/"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class Unauthenticated(RoutecastError):
    status, type, title = 401, "unauthenticated", "API key missing or invalid"


class Forbidden(RoutecastError):
    status, type, title = 403, "forbidden", "API key lacks the scope"


def api_key_from(headers: Headers) -> str | None:
    """``Authorization: Bearer`` wins over ``X-API-Key`` (the standard header first)."""
    authorization = headers.get("authorization")
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip() or None
    return headers.get("x-api-key") or None


def _unauthenticated() -> Unauthenticated:
    return Unauthenticated(
        "send 'Authorization: Bearer <key>' (or X-API-Key); "
        "create one with `routecast keys create --scope <scope>`"
    )


class RequestGuard:
    """Body-size limit and authentication, both decided before the body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        limit = int(runtime.settings.max_body_bytes)
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if runtime.settings.auth_enabled and scope["path"].startswith(PROTECTED_PREFIX):
            raw = api_key_from(headers)
            key_id = parse_key_id(raw) if raw else None
            keys = runtime.keys.cached()
            try:
                if key_id is not None and runtime.keys.fresh(key_id):
                    key = authenticate(keys, raw)  # a digest and a dict look-up: no I/O
                else:
                    key = await run_in_threadpool(authenticate, keys, raw)
            except (DBAPIError, PoolTimeout) as exc:
                await database_problem(exc)(scope, receive, send)
                return
            if key is None:
                response = error_problem(_unauthenticated())
                response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
            scope.setdefault("state", {})["api_key"] = key
        if length is not None and length.isdigit() and int(length) > limit:
            await error_problem(_too_large(limit))(scope, receive, send)
            return
        if length is None and scope["method"] in _BODY_METHODS:
            body = await _read_capped(receive, limit)
            if body is None:
                await error_problem(_too_large(limit))(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the body exceeds {limit} bytes; split it (e.g. fewer inventory events per request)",
        limit_bytes=limit,
    )


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    """Read a body of unknown length, giving up (``None``) as soon as it passes ``limit``."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# Declared so the OpenAPI document carries the two ways to send a key; the guard above
# already authenticated the request from the same headers.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def require(scope: KeyScope) -> Callable[..., Awaitable[None]]:
    """The scope check as a dependency; ``async`` so FastAPI runs it in the event loop
    (a plain ``def`` costs a thread-pool hop per request for a dict look-up)."""

    async def check(
        request: Request,
        settings: SettingsDep,
        _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
        _header_key: Annotated[str | None, Security(_header)] = None,
    ) -> None:
        _authorize(request, settings, scope)

    async def direct(request: Request) -> None:
        _authorize(request, request.app.state.runtime.settings, scope)

    return request_only(check, direct)


def _authorize(request: Request, settings: Settings, scope: KeyScope) -> None:
    """401 without the key the guard authenticated, 403 when it lacks ``scope``."""
    if not settings.auth_enabled:
        return
    key: Any = request.scope.get("state", {}).get("api_key")
    if not isinstance(key, StoredKey):
        raise _unauthenticated()
    if not allows(key, scope):
        raise Forbidden(f"this key lacks the '{scope}' scope", scope=scope)


RouteScope = Annotated[None, Depends(require("route"))]
OrdersScope = Annotated[None, Depends(require("orders"))]
InventoryScope = Annotated[None, Depends(require("inventory"))]
AdminScope = Annotated[None, Depends(require("admin"))]
