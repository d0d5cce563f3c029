"""Dry-run routing: rank nodes and propose a plan; nothing is reserved."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, BackgroundTasks

from serving import metrics
from serving.bounds import PathLongId
from serving.decide import decide
from serving.deps import LedgerDep, RuntimeDep
from serving.problems import DecisionNotFound
from serving.runtime import Runtime
from serving.schemas.order import OrderIn, RouteResponse
from serving.security import RouteScope

router = APIRouter(prefix="/v1", tags=["routing"])
log = logging.getLogger("routecast.decisions")


AUDIT_ATTEMPTS = 3


def audit(
    runtime: Runtime, body: OrderIn, answer: dict[str, Any], order_id: str | None = None
) -> None:
    """Persist the decision (inputs, predictions, plan, versions) after the answer is sent.

    Retried a few times (the database may be failing over); a record that still cannot be
    written is counted in ``routecast_audit_failures_total`` and logged with its decision id,
    never dropped silently."""
    for attempt in range(1, AUDIT_ATTEMPTS + 1):
        try:
            runtime.ledger.record_decision(
                answer["decision_id"],
                request=body.model_dump(mode="json"),
                plan=answer,
                model_versions=answer.get("models", {}),
                mode=str(answer.get("mode", "")),
                degraded=bool(answer.get("degraded")),
                order_id=order_id,
            )
            return
        except Exception:
            if attempt == AUDIT_ATTEMPTS:
                metrics.AUDIT_FAILURES.inc()
                log.exception(
                    "decision audit record lost",
                    extra={"decision_id": answer["decision_id"], "order_id": order_id},
                )
                return
            time.sleep(0.2 * attempt)


@router.post("/route", response_model=RouteResponse)
def route_order(body: OrderIn, runtime: RuntimeDep, _: RouteScope, tasks: BackgroundTasks) -> Any:
    """Route an order without reserving stock. `mode` overrides the default routing mode."""
    answer = decide(body, runtime)
    tasks.add_task(audit, runtime, body, answer)
    return answer


@router.get("/decisions/{decision_id}")
def get_decision(decision_id: PathLongId, ledger: LedgerDep, _: RouteScope) -> Any:
    """The stored audit record of a decision, with its shadow plan when shadow mode is on."""
    rec = ledger.get_decision(decision_id)
    if rec is None:
        raise DecisionNotFound(f"decision {decision_id!r} is unknown (dry runs are kept too)")
    out = asdict(rec)
    out["created_at"] = rec.created_at.isoformat()
    shadow = ledger.get_shadow(decision_id)
    out["shadow"] = (
        None if shadow is None else {**asdict(shadow), "created_at": shadow.created_at.isoformat()}
    )
    return out
