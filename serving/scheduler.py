"""The loop on an embedded schedule, needing nothing installed: export the ledger's closed
days, refresh the batch features from the merged history, and (less often) retrain and gate.

Each step is the same function its CLI command runs (``serving/retrain.py``), so a user may
put ``routecast history export``, ``routecast features refresh`` and ``routecast retrain`` in
cron or an orchestrator instead. The live node×SKU features follow the ledger within seconds
without this loop (``serving/live_features.py``); the loop keeps the batch side and the models
moving. Time comes from ``clock`` so a simulated world can run days in minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from serving.retrain import RetrainReport, export, refresh_features, train_and_gate
from serving.settings import Settings

log = logging.getLogger("routecast.loop")

EXPORT, FEATURES, RETRAIN = "export", "features refresh", "retrain + gate"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class StepRun:
    name: str
    at: datetime
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Scheduler:
    """Runs each step when its period has passed on ``clock`` (a retrain also exports and
    refreshes first, so it trains on today's closed days)."""

    def __init__(
        self,
        settings: Settings,
        *,
        refresh_every: timedelta,
        retrain_every: timedelta | None = timedelta(days=1),
        clock: Callable[[], datetime] = _utcnow,
        max_rows: int | None = 200_000,
        on_run: Callable[[StepRun], None] | None = None,
    ) -> None:
        if refresh_every <= timedelta(0):
            raise ValueError("refresh_every must be positive")
        if retrain_every is not None and retrain_every <= timedelta(0):
            raise ValueError("retrain_every must be positive")
        self.settings = settings
        self.every = {EXPORT: refresh_every, FEATURES: refresh_every}
        if retrain_every is not None:
            self.every[RETRAIN] = retrain_every
        self.clock = clock
        self.max_rows = max_rows
        self.on_run = on_run
        self.last: dict[str, datetime] = {}
        self.runs: list[StepRun] = []
        #: the step running now (``GET /v1/admin/loop`` shows it, so a driver can wait)
        self.running: str | None = None
        #: with a simulated clock nothing runs until the clock is first set (``start_at``)
        self.waiting_for_clock = False
        self.report = RetrainReport()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def due(self, now: datetime) -> list[str]:
        due = [
            n
            for n, every in self.every.items()
            if n not in self.last or now - self.last[n] >= every
        ]
        if RETRAIN in due:  # train on everything closed so far
            due = [EXPORT, FEATURES, RETRAIN]
        return [n for n in (EXPORT, FEATURES, RETRAIN) if n in due]

    def start_at(self, at: datetime) -> None:
        """Count every period from ``at`` (a world that starts where its history ends has
        nothing to export or retrain on yet) and let the loop run."""
        for name in self.every:
            self.last.setdefault(name, at)
        self.waiting_for_clock = False

    def tick(self, now: datetime | None = None) -> list[StepRun]:
        """Run the steps due at ``now`` (default: the clock); a failed step is recorded and
        retried at the next tick, and the steps after it wait."""
        if self.waiting_for_clock:
            return []
        now = now or self.clock()
        done = []
        for name in self.due(now):
            self.running = name
            try:
                run = self._run(name, now)
            finally:
                self.running = None
            done.append(run)
            if run.error is not None:
                break
            self.last[name] = now
        return done

    def status(self, now: datetime, recent: int = 20) -> dict[str, Any]:
        """What ``GET /v1/admin/loop`` answers: steps due, the one running, recent runs."""
        return {
            "now": now.isoformat(),
            "waiting_for_clock": self.waiting_for_clock,
            "running": self.running,
            "due": [] if self.waiting_for_clock else self.due(now),
            "every": {k: v.total_seconds() for k, v in self.every.items()},
            "last": {k: v.isoformat() for k, v in self.last.items()},
            "runs": [
                {
                    "name": r.name,
                    "at": r.at.isoformat(),
                    "seconds": r.seconds,
                    "detail": r.detail,
                    "error": r.error,
                }
                for r in self.runs[-recent:]
            ],
        }

    def _run(self, name: str, now: datetime) -> StepRun:
        t0 = time.perf_counter()
        report = RetrainReport(promises=self.report.promises)
        detail: dict[str, Any] = {}
        error = None
        try:
            if name == EXPORT:
                export(self.settings, now=now, report=report)
                self.report.promises = report.promises
                detail = {"rows": report.exported}
            elif name == FEATURES:
                refresh_features(self.settings, now=now, report=report)
                detail = {"merged": report.merged}
            else:
                train_and_gate(self.settings, report=report, max_rows=self.max_rows)
                detail = {
                    "challengers": report.challengers,
                    "promoted": report.promoted,
                    "gate": report.gate,
                }
            detail["steps"] = report.steps
        except Exception as exc:  # keep the loop alive; the step runs again next tick
            error = f"{type(exc).__name__}: {exc}"
            log.exception("loop step failed", extra={"step": name})
        run = StepRun(name, now, round(time.perf_counter() - t0, 2), detail, error)
        self.runs.append(run)
        if self.on_run:
            self.on_run(run)
        return run

    # -- a background thread (``routecast serve --refresh-every``) ------------------------
    def start(self, poll_seconds: float = 30.0) -> None:
        self._thread = threading.Thread(
            target=self.run_forever, args=(poll_seconds,), name="routecast-loop", daemon=True
        )
        self._thread.start()

    def run_forever(self, poll_seconds: float = 30.0) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(poll_seconds)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


#: The loop running in this process beside the API (``routecast serve --refresh-every``),
#: which ``GET /v1/admin/loop`` reports; None when the loop runs elsewhere or not at all.
_attached: Scheduler | None = None


def attach(scheduler: Scheduler | None) -> None:
    global _attached
    _attached = scheduler


def attached() -> Scheduler | None:
    return _attached
