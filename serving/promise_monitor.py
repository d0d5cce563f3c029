"""Promise monitoring: are the dates customers are told kept?

Every confirmed shipment is stored against its leg of the promise (``serving/ledger/
promise_outcomes.py``, in the delivery's transaction). From those rows this module measures
coverage (share delivered by ``deliver_by``) and P50 error, overall, per node and per lane
(node → destination region) — one function, ``promise_summary``, read by
``GET /v1/promises/summary``, the Prometheus gauges and the MLflow review of a challenger.

A lane whose coverage over the window falls below the target, with enough deliveries to
judge, gets its P90 widened by the conformal quantile of its residuals
(``routing.promise.conformal_widening``); the widening is stored per delivery model version
and added by ``serving.promises`` to that lane's next promises, until a retrained champion
(another version) starts again from its own quantiles.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from routing.promise import conformal_widening
from serving import metrics
from serving.ledger import Ledger
from serving.ledger.promise_outcomes import LaneWidening, PromiseOutcome
from serving.promises import Widening
from serving.settings import Settings

log = logging.getLogger("routecast.promises")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stats(rows: Sequence[PromiseOutcome]) -> dict[str, Any]:
    n = len(rows)
    if n == 0:
        return {"deliveries": 0, "on_time": 0, "coverage": None, "p50_mae_days": None}
    on_time = sum(1 for r in rows if r.on_time)
    return {
        "deliveries": n,
        "on_time": on_time,
        "coverage": round(on_time / n, 4),
        "p50_mae_days": round(sum(abs(r.p50_error_days) for r in rows) / n, 4),
        "p50_bias_days": round(sum(r.p50_error_days for r in rows) / n, 4),
        "mean_days_late": round(sum(max(0, r.days_late) for r in rows) / n, 4),
    }


def promise_summary(
    ledger: Ledger,
    *,
    since: datetime | None,
    target: float,
    delivery_model: str | None = None,
    widening_model: str | None = None,
) -> dict[str, Any]:
    """Coverage of ``deliver_by`` and P50 error of shipments delivered since ``since``,
    overall, per node and per lane, with each lane's P90 widening (for ``widening_model``,
    the latest of any model when ``None``)."""
    rows = ledger.promise_outcomes(since, delivery_model=delivery_model)
    by_node: dict[str, list[PromiseOutcome]] = {}
    by_lane: dict[tuple[str, str], list[PromiseOutcome]] = {}
    for r in rows:
        by_node.setdefault(r.node_id, []).append(r)
        by_lane.setdefault((r.node_id, r.dest_region), []).append(r)
    widened: dict[tuple[str, str], LaneWidening] = {}
    for found in ledger.lane_widenings(widening_model):
        key = (found.node_id, found.dest_region)
        if key not in widened or found.updated_at > widened[key].updated_at:
            widened[key] = found
    lanes = []
    for (node, region), part in sorted(by_lane.items()):
        st = _stats(part)
        w = widened.get((node, region))
        lanes.append(
            {
                "node_id": node,
                "dest_region": region,
                **st,
                "below_target": st["coverage"] is not None and st["coverage"] < target,
                "widen_days": w.widen_days if w is not None else 0.0,
                "widened_for_model": w.delivery_model if w is not None else None,
            }
        )
    return {
        "since": since.isoformat() if since is not None else None,
        "target": target,
        "delivery_model": delivery_model,
        "overall": _stats(rows),
        "nodes": [{"node_id": n, **_stats(part)} for n, part in sorted(by_node.items())],
        "lanes": lanes,
        "widened_lanes": sum(1 for w in widened.values() if w.widen_days > 0),
    }


def publish(summary: dict[str, Any]) -> None:
    """Set the Prometheus gauges from a summary (series of lanes no longer seen are dropped)."""
    overall = summary["overall"]
    metrics.PROMISE_DELIVERIES.set(overall["deliveries"])
    metrics.PROMISE_COVERAGE.set(overall["coverage"] if overall["coverage"] is not None else 0)
    metrics.PROMISE_P50_MAE.set(overall["p50_mae_days"] or 0)
    metrics.PROMISE_NODE_COVERAGE.clear()
    metrics.PROMISE_NODE_P50_MAE.clear()
    for n in summary["nodes"]:
        metrics.PROMISE_NODE_COVERAGE.labels(n["node_id"]).set(n["coverage"])
        metrics.PROMISE_NODE_P50_MAE.labels(n["node_id"]).set(n["p50_mae_days"])
    metrics.PROMISE_LANE_COVERAGE.clear()
    metrics.PROMISE_LANE_P50_MAE.clear()
    metrics.PROMISE_LANE_WIDEN.clear()
    for ln in summary["lanes"]:
        labels = (ln["node_id"], ln["dest_region"])
        metrics.PROMISE_LANE_COVERAGE.labels(*labels).set(ln["coverage"])
        metrics.PROMISE_LANE_P50_MAE.labels(*labels).set(ln["p50_mae_days"])
        metrics.PROMISE_LANE_WIDEN.labels(*labels).set(ln["widen_days"])


def review_text(summary: dict[str, Any]) -> str:
    """A few lines for a model version's description in the MLflow review."""
    o = summary["overall"]
    if not o["deliveries"]:
        return "Promise monitor: no confirmed deliveries yet."
    worst = sorted(
        (ln for ln in summary["lanes"] if ln["below_target"]),
        key=lambda ln: (ln["coverage"], -ln["deliveries"]),
    )[:5]
    lines = [
        f"Promise monitor ({o['deliveries']} confirmed shipments"
        + (f" since {summary['since']}" if summary["since"] else "")
        + f"): coverage of deliver_by {o['coverage']:.3f} (target {summary['target']:.2f}), "
        f"P50 error MAE {o['p50_mae_days']:.2f} d, bias {o['p50_bias_days']:+.2f} d; "
        f"{summary['widened_lanes']} lane(s) carry a widened P90.",
    ]
    lines += [
        f"- below target: {ln['node_id']} → {ln['dest_region']}: coverage {ln['coverage']:.2f} "
        f"over {ln['deliveries']}, P90 widened {ln['widen_days']:g} d"
        for ln in worst
    ]
    return "\n".join(lines)


class PromiseMonitor:
    """Keeps the lane widenings the promises read, updates them as deliveries are confirmed
    and publishes the gauges; one per process (``Runtime.promises``)."""

    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        model_key: Callable[[], str],
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.model_key = model_key
        self.clock = clock
        self._widening = Widening(model="", days={})
        self._lock = threading.Lock()
        self.dirty = True

    def window_start(self) -> datetime:
        return self.clock() - timedelta(days=self.settings.promise_window_days)

    def widening(self) -> Widening:
        """The widening for the serving delivery model (reloaded when the champion changes)."""
        key = self.model_key()
        current = self._widening
        if current.model == key:
            return current
        with self._lock:
            if self._widening.model != key:
                rows = self.ledger.lane_widenings(key)
                self._widening = Widening(
                    key, {(w.node_id, w.dest_region): w.widen_days for w in rows}
                )
            return self._widening

    def observe(self, lanes: Iterable[tuple[str, str]]) -> list[LaneWidening]:
        """After deliveries of ``lanes`` were confirmed: widen each lane whose coverage under
        the serving model fell below target; returns the widenings changed."""
        s = self.settings
        current = self.widening()
        wanted = sorted(set(lanes))
        self.dirty = True
        if not wanted:
            return []
        rows = self.ledger.promise_outcomes(
            self.window_start(), lanes=wanted, delivery_model=current.model
        )
        by_lane: dict[tuple[str, str], list[PromiseOutcome]] = {}
        for r in rows:
            by_lane.setdefault((r.node_id, r.dest_region), []).append(r)
        changed = []
        days = dict(current.days)
        for lane, part in by_lane.items():
            if len(part) < s.promise_min_deliveries:
                continue
            coverage = sum(1 for r in part if r.on_time) / len(part)
            if coverage >= s.promise_coverage_target:
                continue
            widen = conformal_widening(
                [r.days_late + r.widened_days for r in part], s.promise_coverage_target
            )
            if widen <= days.get(lane, 0.0):
                continue
            w = LaneWidening(
                lane[0], lane[1], current.model, widen, round(coverage, 4), len(part), self.clock()
            )
            self.ledger.set_lane_widening(w)
            days[lane] = widen
            changed.append(w)
            log.info(
                "lane P90 widened",
                extra={"node_id": lane[0], "dest_region": lane[1], "days": widen},
            )
        if changed:
            with self._lock:
                if self._widening.model == current.model:
                    self._widening = Widening(current.model, days)
        return changed

    def observe_shipments(self, shipment_ids: Sequence[str]) -> list[LaneWidening]:
        """``observe`` the lanes of newly confirmed shipments (those with a promise)."""
        if not shipment_ids:
            return []
        rows = self.ledger.promise_outcomes(shipment_ids=shipment_ids)
        return self.observe((r.node_id, r.dest_region) for r in rows)

    def summary(self, since: datetime | None = None) -> dict[str, Any]:
        serving = self.widening().model
        out = promise_summary(
            self.ledger,
            since=since if since is not None else self.window_start(),
            target=self.settings.promise_coverage_target,
            widening_model=serving,
        )
        out["serving_delivery_model"] = serving
        return out

    def publish_if_dirty(self) -> None:
        if not self.dirty:
            return
        self.dirty = False
        publish(self.summary())

    def reset(self) -> int:
        """Forget every widening (after retraining); returns lanes forgotten."""
        n = self.ledger.clear_lane_widening()
        with self._lock:
            self._widening = Widening(model="", days={})
        return n
