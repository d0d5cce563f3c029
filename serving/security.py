"""Scope checks as FastAPI dependencies: 401 without a valid key, 403 without the scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header

from serving.auth import Scope, verify
from serving.deps import KeysDep, SettingsDep
from serving.problems import RoutecastError


class Unauthenticated(RoutecastError):
    status, type, title = 401, "unauthenticated", "API key missing or invalid"


class Forbidden(RoutecastError):
    status, type, title = 403, "forbidden", "API key lacks the scope"


def require(scope: Scope) -> Callable[..., None]:
    def check(
        settings: SettingsDep,
        keys: KeysDep,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> None:
        if not settings.auth_enabled:
            return
        raw = x_api_key
        if raw is None and authorization and authorization.lower().startswith("bearer "):
            raw = authorization[7:].strip()
        authenticated, allowed = verify(keys, raw, scope)
        if not authenticated:
            raise Unauthenticated(
                "send 'Authorization: Bearer <key>' (or X-API-Key); "
                "create one with `routecast keys create --scope " + scope + "`"
            )
        if not allowed:
            raise Forbidden(f"this key lacks the '{scope}' scope", scope=scope)

    return check


RouteScope = Annotated[None, Depends(require("route"))]
OrdersScope = Annotated[None, Depends(require("orders"))]
InventoryScope = Annotated[None, Depends(require("inventory"))]
AdminScope = Annotated[None, Depends(require("admin"))]
