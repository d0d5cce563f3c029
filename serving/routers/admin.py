"""The simulated clock and the embedded loop, for a driver that plays simulated days
(``routecast operate --url``). Only a service started with ``--simulated-clock`` accepts a
time; every other one answers 409 and keeps the wall clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from serving.deps import RuntimeDep
from serving.problems import RoutecastError
from serving.scheduler import attached
from serving.security import AdminScope
from serving.sim_clock import ClockMovedBack, SimulatedClock

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class ClockOff(RoutecastError):
    status, type, title = 409, "clock-not-simulated", "The service runs on the wall clock"


class ClockBackwards(RoutecastError):
    status, type, title = 409, "clock-backwards", "The simulated clock only moves forward"


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    now: AwareDatetime = Field(description="The service's new time (with a UTC offset).")


def _clock_json(clock: object, now: datetime) -> dict[str, Any]:
    started = isinstance(clock, SimulatedClock) and clock.started
    return {
        "simulated": isinstance(clock, SimulatedClock),
        "started": started,
        "now": now.isoformat(),
    }


@router.get("/clock")
def get_clock(runtime: RuntimeDep, _: AdminScope) -> dict[str, Any]:
    """The service's time and whether it is simulated."""
    return _clock_json(runtime.clock, runtime.clock())


@router.put("/clock")
def set_clock(body: ClockIn, runtime: RuntimeDep, _: AdminScope) -> dict[str, Any]:
    """Move the simulated clock to ``now`` (forward only once started); the embedded loop
    counts its periods from the first time set."""
    clock = runtime.clock
    if not isinstance(clock, SimulatedClock):
        raise ClockOff(
            "this service reads the wall clock; start it with `routecast serve "
            "--simulated-clock` to let a simulated world set its time",
            field="now",
        )
    first = not clock.started
    try:
        now = clock.set(body.now, strict=True)
    except ClockMovedBack as exc:
        raise ClockBackwards(str(exc), field="now") from exc
    loop = attached()
    if first and loop is not None:
        loop.start_at(now)
    return _clock_json(clock, now)


@router.get("/loop")
def get_loop(runtime: RuntimeDep, _: AdminScope) -> dict[str, Any]:
    """The loop running beside the API (``serve --refresh-every``): steps due, the step
    running, recent runs with their timings; ``{"attached": false}`` without one."""
    loop = attached()
    if loop is None:
        return {"attached": False}
    return {"attached": True, **loop.status(runtime.clock())}
