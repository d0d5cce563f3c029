"""Dry-run routing: rank nodes and propose a plan; nothing is reserved."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.decide import decide
from serving.deps import RuntimeDep
from serving.schemas import OrderIn, RouteResponse

router = APIRouter(prefix="/v1", tags=["routing"])


@router.post("/route", response_model=RouteResponse)
def route_order(body: OrderIn, runtime: RuntimeDep) -> Any:
    """Route an order without reserving stock. `mode` overrides the default routing mode."""
    return decide(body, runtime)
