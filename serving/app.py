"""FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from serving import console, metrics, problems
from serving.routers import (
    admin,
    edits,
    events,
    health,
    inventory,
    kpis,
    models,
    nodes,
    orders,
    promises,
    returns,
    route,
    shadow,
    skus,
    tracking,
)
from serving.runtime import Runtime
from serving.security import RequestGuard
from serving.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None,
    *,
    background: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The API; ``clock`` replaces the wall clock (a simulated world, ``routecast operate``)."""
    settings = settings or get_settings()
    if clock is None and settings.simulated_clock:
        from serving.sim_clock import shared_clock

        clock = shared_clock()
    runtime = Runtime(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start(background=background)
        yield
        runtime.stop()

    app = FastAPI(
        title="routecast",
        version="0.1.0",
        description="Predictive order routing: rank fulfilment nodes by expected cost.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    problems.install(app)
    app.add_middleware(RequestGuard)
    metrics.install(app)
    # The decision endpoints first: a request is matched against the routes in order, and
    # nearly every request is one of theirs.
    for module in (route, orders):
        app.include_router(module.router, responses=problems.PROBLEM_RESPONSES)
    app.include_router(health.router)
    for module in (
        models,
        skus,
        edits,
        tracking,
        inventory,
        nodes,
        shadow,
        promises,
        events,
        returns,
        kpis,
        admin,
    ):
        app.include_router(module.router, responses=problems.PROBLEM_RESPONSES)
    app.include_router(nodes.policy_router, responses=problems.PROBLEM_RESPONSES)
    console.install(app)
    return app
