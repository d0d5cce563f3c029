"""Shadow mode: a second routing mode plans every live order beside the live decision.

The policy's ``shadow: {mode: ...}`` turns it on. The live path only enqueues a job (the
order, the network and predictions it already built); a bounded background worker plans the
shadow with ``routing.route``, compares it with the live plan under the same predictions and
stores both in the decision audit. Nothing is ever reserved for a shadow plan. A full queue
drops the shadow (counted in ``routecast_shadow_total{outcome="dropped"}``), never the order.

``summarize`` is the one aggregation behind ``GET /v1/shadow/summary`` and
``routecast shadow report``.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from routing import Mode, Network, Order, Policy, Prediction, plan_to_dict, route
from routing.calendar import EARLIEST, within_bounds
from routing.ratings import lateness
from serving.ledger import Ledger, ShadowRecord
from serving.metrics import SHADOW

log = logging.getLogger("routecast.shadow")

#: Shadow jobs waiting at most; beyond it new shadows are dropped (the live order never waits).
QUEUE_LIMIT = 2_000
#: The worker starts a shadow only when no live decision runs, or after waiting this long
#: (so shadows still progress under saturation, one per wait).
MAX_DEFER_S = 0.05

Predictions = Mapping[tuple[str, str], Prediction]


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """Everything the live decision saw, so the shadow plans on the same inputs."""

    decision_id: str
    mode: Mode
    order: Order
    network: Network
    policy: Policy
    now: datetime
    live_mode: str
    live_plan: dict[str, Any]
    predictions: Predictions | None
    #: scores the candidate pairs when the live path did not (cost/classic live modes)
    predict: Callable[[], Predictions | None] | None = None


def plan_shadow(job: ShadowJob) -> ShadowRecord:
    """Route the order in the shadow mode and compare it with the live plan."""
    t0 = time.perf_counter()
    preds = job.predictions
    if preds is None and job.predict is not None:
        preds = job.predict()
    if job.mode is Mode.PREDICTIVE and preds is None:
        return _record(job, None, None, "predictive shadow skipped: models or features unavailable")
    plan = plan_to_dict(
        route(
            job.order,
            job.network,
            mode=job.mode,
            policy=job.policy,
            predictions=preds,
            now=job.now,
        )
    )
    plan.pop("ranking", None)  # the candidates are the live plan's; keep the audit row small
    comparison = compare(job.live_plan, plan, job.order, job.policy, preds)
    comparison["ms"] = round((time.perf_counter() - t0) * 1000, 3)
    return _record(job, plan, comparison, None)


def _record(
    job: ShadowJob,
    plan: dict[str, Any] | None,
    comparison: dict[str, Any] | None,
    error: str | None,
) -> ShadowRecord:
    return ShadowRecord(
        decision_id=job.decision_id,
        created_at=job.now,
        live_mode=job.live_mode,
        mode=job.mode,
        plan=plan,
        comparison=comparison,
        error=error,
    )


def outcome(
    plan: dict[str, Any], order: Order, policy: Policy, preds: Predictions | None
) -> dict[str, Any]:
    """What a plan commits to: nodes, cost (shipping + handling + parcel fees, no risk terms,
    so modes compare), shipments, and the order's predicted risk. With predictions both plans
    are priced by the same model: P(any node rejects) = 1 - prod(1 - p_stockout) over the
    allocations, P(late) = the latest parcel's P(days > promise). Without, the plan's own
    rule-based terms are used (stockout risk 0)."""
    promise = {
        ln.line_id: order.promise_days
        if order.promise_days is not None
        else policy.rules(ln.product_group).promise_days
        for ln in order.lines
    }
    p_ok, p_late, cost = 1.0, 0.0, 0.0
    for a in plan["allocations"]:
        cost += float(a["shipping"] or 0.0) + float(a["handling"] or 0.0)
        pred = preds.get((a["line_id"], a["node_id"])) if preds is not None else None
        if pred is not None:
            ps = min(max(pred.p_stockout, 0.0), 1.0)
            pl = lateness(pred.days_p50, max(pred.days_p90, pred.days_p50), promise[a["line_id"]])[
                0
            ]
        else:
            ps, pl = float(a["p_stockout"] or 0.0), float(a["p_late"] or 0.0)
        p_ok *= 1.0 - ps
        p_late = max(p_late, pl)
    cost += sum(float(s["fixed_cost"] or 0.0) for s in plan["shipment_detail"])
    return {
        "nodes": sorted({a["node_id"] for a in plan["allocations"]}),
        "cost": round(cost, 4),
        "shipments": int(plan["shipments"]),
        "shippable": bool(plan["shippable"]),
        "unallocated_units": float(sum(u["qty"] for u in plan["unallocated"])),
        "p_stockout": round(1.0 - p_ok, 6),
        "p_late": round(p_late, 6),
    }


def compare(
    live: dict[str, Any],
    shadow: dict[str, Any],
    order: Order,
    policy: Policy,
    preds: Predictions | None,
) -> dict[str, Any]:
    """Per-order comparison stored with the shadow plan; deltas are shadow minus live."""
    a = outcome(live, order, policy, preds)
    b = outcome(shadow, order, policy, preds)
    return {
        "basis": "model" if preds is not None else "rule",
        "live": a,
        "shadow": b,
        "same_nodes": a["nodes"] == b["nodes"],
        "delta": {k: round(b[k] - a[k], 6) for k in ("cost", "shipments", "p_stockout", "p_late")},
    }


def _mean(xs: list[float]) -> float | None:
    return round(math.fsum(xs) / len(xs), 6) if xs else None


def summarize(records: Iterable[ShadowRecord], since: datetime | None = None) -> dict[str, Any]:
    """How often and how much live and shadow differ, per shadow mode.

    ``different_nodes_share`` is the share of compared orders whose node sets differ; cost,
    risk and shipments are means per compared order (deltas are shadow minus live), plus the
    total cost difference over all compared orders."""
    groups: dict[str, list[ShadowRecord]] = {}
    total = 0
    for rec in records:
        groups.setdefault(rec.mode, []).append(rec)
        total += 1
    modes: dict[str, Any] = {}
    for mode, recs in sorted(groups.items()):
        done = [r.comparison for r in recs if r.comparison is not None]
        differ = sum(1 for c in done if not c["same_nodes"])
        live_modes: dict[str, int] = {}
        for r in recs:
            live_modes[r.live_mode] = live_modes.get(r.live_mode, 0) + 1

        def side(key: str, done: list[dict[str, Any]] = done) -> dict[str, float | None]:
            return {
                "live_mean": _mean([c["live"][key] for c in done]),
                "shadow_mean": _mean([c["shadow"][key] for c in done]),
                "delta_mean": _mean([c["delta"][key] for c in done]),
            }

        modes[mode] = {
            "decisions": len(recs),
            "compared": len(done),
            "failed": len(recs) - len(done),
            "live_modes": dict(sorted(live_modes.items())),
            "model_basis": sum(1 for c in done if c["basis"] == "model"),
            "different_nodes": differ,
            "different_nodes_share": round(differ / len(done), 6) if done else None,
            "cost": {
                **side("cost"),
                "delta_total": round(math.fsum(c["delta"]["cost"] for c in done), 4),
            },
            "p_stockout": side("p_stockout"),
            "p_late": side("p_late"),
            "shipments_per_order": side("shipments"),
            "live_unshippable": sum(1 for c in done if not c["live"]["shippable"]),
            "shadow_unshippable": sum(1 for c in done if not c["shadow"]["shippable"]),
        }
    return {
        "since": since.isoformat() if since is not None else None,
        "decisions": total,
        "modes": modes,
    }


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta:
    """An age or period such as ``90s``, ``30m``, ``1h``, ``7d`` (``ValueError`` otherwise)."""
    t = text.strip()
    if not (t[-1:].lower() in _UNITS and t[:-1].replace(".", "", 1).isdigit()):
        raise ValueError(f"{text!r} is not a duration like 90s, 30m, 1h or 7d")
    return timedelta(seconds=float(t[:-1]) * _UNITS[t[-1].lower()])


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``since`` as an ISO 8601 time (naive = UTC) or an age such as ``30m``, ``24h``, ``7d``."""
    if text is None or not text.strip():
        return None
    t = text.strip()
    try:
        if t[-1:].lower() in _UNITS and t[:-1].replace(".", "", 1).isdigit():
            at = (now or datetime.now(UTC)) - parse_duration(t)
        else:
            at = datetime.fromisoformat(t)
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at
    except (ValueError, OverflowError):
        at = None
    if at is None or not within_bounds(at):
        raise ValueError(
            f"since={text!r} is neither an ISO 8601 time (2026-12-01T09:00:00Z) "
            f"nor an age like 30m, 24h or 7d, between {EARLIEST:%Y} and now"
        )
    return at.astimezone(UTC)


def report(ledger: Ledger, since: datetime | None) -> dict[str, Any]:
    """The shadow summary of the decisions stored in ``ledger`` since ``since``."""
    return summarize(ledger.shadows_since(since), since)


class ShadowWorker:
    """One background thread plans queued shadows and stores them; the queue is bounded."""

    def __init__(self, ledger: Ledger, max_queue: int = QUEUE_LIMIT) -> None:
        self.ledger = ledger
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(max_queue)
        self._thread: threading.Thread | None = None
        self._live = 0
        self._idle = threading.Condition()

    @contextmanager
    def live(self) -> Iterator[None]:
        """Mark a live decision in flight: the worker does not start a shadow meanwhile, so
        shadows run in the gaps between orders instead of competing with them for the CPU."""
        with self._idle:
            self._live += 1
        try:
            yield
        finally:
            with self._idle:
                self._live -= 1
                if not self._live:
                    self._idle.notify_all()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="routecast-shadow", daemon=True)
            self._thread.start()

    def submit(self, job: ShadowJob) -> bool:
        """Queue a shadow without waiting; ``False`` (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            SHADOW.labels("dropped").inc()
            return False
        return True

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued shadow is stored (shutdown, tests, reports)."""
        deadline = time.monotonic() + timeout
        done = self._queue.all_tasks_done
        with done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                done.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self.drain(timeout)
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("shadow queue still full at shutdown; unplanned shadows are lost")
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                with self._idle:
                    self._idle.wait_for(lambda: not self._live, timeout=MAX_DEFER_S)
                rec = plan_shadow(job)
                self.ledger.record_shadow(rec)
                SHADOW.labels("skipped" if rec.error else "stored").inc()
            except Exception:  # one bad shadow must not stop the worker
                SHADOW.labels("error").inc()
                log.exception("shadow plan failed", extra={"decision_id": job and job.decision_id})
            finally:
                self._queue.task_done()
