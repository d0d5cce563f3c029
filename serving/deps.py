"""Typed dependency aliases for routers: each takes the narrow part it needs.

Only the decision path (route, place, reject) takes the whole ``Runtime``; reads and
maintenance take the ledger, the models, the catalogue, the policy or the settings.

The getters are ``async``: each only reads an attribute, and FastAPI runs a plain ``def``
dependency in its thread pool (a thread hop and a GIL hand-over per dependency per request,
which showed in the request profile).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from inspect import iscoroutinefunction
from typing import Annotated, Any, TypeVar, get_type_hints

from fastapi import BackgroundTasks, Depends, Request, Response
from fastapi.dependencies.utils import request_params_to_args
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from serving.catalogue import Catalogue
from serving.key_store import SqlKeyStore
from serving.ledger import Ledger
from serving.model_store import ModelStore
from serving.policy_store import PolicyStore
from serving.promise_monitor import PromiseMonitor
from serving.runtime import Runtime
from serving.settings import Settings

#: Dependencies that need nothing but the request, by the callable FastAPI knows them by,
#: with what ``DecisionRoute`` calls in their place (see ``request_only``).
_REQUEST_ONLY: dict[Callable[..., Any], Callable[[Request], Awaitable[Any]]] = {}


F = TypeVar("F", bound=Callable[..., Any])


def request_only(dependency: F, direct: Callable[[Request], Awaitable[Any]] | None = None) -> F:
    """Declare ``dependency`` answerable from the request alone by ``direct`` (itself when it
    takes only the request), so ``DecisionRoute`` may resolve it without FastAPI."""
    _REQUEST_ONLY[dependency] = direct or dependency
    return dependency


@request_only
async def get_runtime(request: Request) -> Runtime:
    return _runtime(request)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_app_settings(request: Request) -> Settings:
    return _runtime(request).settings


async def get_ledger(request: Request) -> Ledger:
    return _runtime(request).ledger


async def get_models(request: Request) -> ModelStore:
    return _runtime(request).models


async def get_keys(request: Request) -> SqlKeyStore:
    return _runtime(request).keys


async def get_catalogue(request: Request) -> Catalogue:
    return _runtime(request).catalogue


async def get_policies(request: Request) -> PolicyStore:
    return _runtime(request).policies


async def get_promises(request: Request) -> PromiseMonitor:
    return _runtime(request).promises


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]
ModelsDep = Annotated[ModelStore, Depends(get_models)]
KeysDep = Annotated[SqlKeyStore, Depends(get_keys)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
PoliciesDep = Annotated[PolicyStore, Depends(get_policies)]
PromisesDep = Annotated[PromiseMonitor, Depends(get_promises)]


class DecisionRoute(APIRoute):
    """A route whose ordinary requests skip FastAPI's general request handling.

    FastAPI resolves an endpoint's parameters anew on every request: the dependency tree
    walked recursively with cache keys, a throw-away ``Response``, the content type parsed
    with ``email.message``. For the decision endpoints (``POST /v1/route``, ``POST
    /v1/orders``) that was ~0.3 ms of CPU per request, a fifth of what the server may spend on
    one. Here the plan is made once: an endpoint whose parameters are one JSON body, headers,
    ``BackgroundTasks`` and dependencies declared ``request_only`` (runtime, scope checks)
    gets them straight from the request. Anything out of the ordinary (another content
    type, a body or header that does not validate, dependency overrides) goes to FastAPI's
    own handler, so errors read exactly as before; the OpenAPI document is FastAPI's as well.
    Other endpoints of a router with this class are handled by FastAPI as usual.
    """

    #: Whether this route's ordinary requests take the direct path (set with its handler).
    direct = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        full = super().get_route_handler()
        lean = _lean_handler(self, full)
        self.direct = lean is not None
        return lean or full


def _lean_handler(
    route: APIRoute, full: Callable[[Request], Coroutine[Any, Any, Response]]
) -> Callable[[Request], Coroutine[Any, Any, Response]] | None:
    """The direct handler of ``route``, or ``None`` when its parameters need FastAPI."""
    d = route.dependant
    endpoint = d.call
    if (
        endpoint is None
        or len(d.body_params) != 1
        or d.path_params
        or d.query_params
        or d.cookie_params
        or d.request_param_name
        or d.response_param_name
        or d.security_scopes_param_name
        or not isinstance(get_type_hints(endpoint).get("return"), type)
        or not issubclass(get_type_hints(endpoint)["return"], Response)
    ):
        return None
    deps: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = []
    for sub in d.dependencies:
        direct = _REQUEST_ONLY.get(sub.call) if sub.call is not None else None
        if direct is None or sub.name is None:
            return None
        deps.append((sub.name, direct))
    body_field = d.body_params[0]
    headers = d.header_params
    tasks_name = d.background_tasks_param_name
    is_async = iscoroutinefunction(endpoint)
    overrides = route.dependency_overrides_provider

    async def handle(request: Request) -> Response:
        if (overrides is not None and overrides.dependency_overrides) or request.headers.get(
            "content-type"
        ) != "application/json":
            return await full(request)
        try:
            raw = json.loads(await request.body())
        except ValueError:
            return await full(request)
        body, errors = body_field.validate(raw, {}, loc=("body",))
        values, header_errors = request_params_to_args(headers, request.headers)
        if errors or header_errors:
            return await full(request)
        values[body_field.name] = body
        for name, direct in deps:
            values[name] = await direct(request)
        tasks = BackgroundTasks()
        if tasks_name is not None:
            values[tasks_name] = tasks
        answer: Response = (
            await endpoint(**values) if is_async else await run_in_threadpool(endpoint, **values)
        )
        if answer.background is None:
            answer.background = tasks
        return answer

    return handle
