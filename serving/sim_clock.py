"""A simulated clock for the service, so a simulated world can run days in minutes against it.

``routecast operate`` plays a world whose days are not today. In process it hands the app a
``SimulatedClock``; against a running service (``--url``) the service must have been started
with ``routecast serve --simulated-clock``, which makes the runtime and the embedded loop read
the process's shared clock and lets an admin key set it (``PUT /v1/admin/clock``). It is off
unless asked for: a production service always reads the wall clock.

Until it is first set the clock reads the wall clock; the first set may go anywhere (the
world's first morning), later sets only move it forward, so the ledger never sees time run
backwards.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime


class ClockMovedBack(ValueError):
    """A set that would move a started clock backwards."""


class SimulatedClock:
    """Callable like a clock; ``set`` moves it (see module docstring)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._now is not None

    def __call__(self) -> datetime:
        now = self._now
        return datetime.now(UTC) if now is None else now

    def set(self, at: datetime, *, strict: bool = False) -> datetime:
        """Move to ``at`` (timezone-aware); an earlier time keeps the clock where it is, or
        raises ``ClockMovedBack`` with ``strict``. Returns the clock's time after the set."""
        if at.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware time")
        at = at.astimezone(UTC)
        with self._lock:
            if self._now is None or at >= self._now:
                self._now = at
            elif strict:
                raise ClockMovedBack(
                    f"the clock is at {self._now.isoformat()}; it does not move back to "
                    f"{at.isoformat()}"
                )
            return self._now


_shared: SimulatedClock | None = None
_shared_lock = threading.Lock()


def shared_clock() -> SimulatedClock:
    """The process's simulated clock (``routecast serve --simulated-clock`` runs one process,
    so the app's runtime and the embedded loop read the same one)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SimulatedClock()
        return _shared
