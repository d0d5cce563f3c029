"""Dry-run routing: rank nodes and propose a plan; nothing is reserved."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, BackgroundTasks

from serving.bounds import PathLongId
from serving.decide import decide
from serving.deps import RuntimeDep
from serving.ledger.records import DecisionRecord
from serving.problems import DecisionNotFound
from serving.runtime import Runtime
from serving.schemas.order import OrderIn, RouteResponse
from serving.security import RouteScope

router = APIRouter(prefix="/v1", tags=["routing"])


def audit(
    runtime: Runtime, body: OrderIn, answer: dict[str, Any], order_id: str | None = None
) -> None:
    """Hand the decision's record (inputs, predictions, plan, versions) to the audit writer
    after the answer is sent; it is stored within milliseconds, batched with others, and a
    record that cannot be stored is counted and logged, never dropped silently
    (``serving.audit_log``)."""
    runtime.audits.submit(
        DecisionRecord(
            decision_id=answer["decision_id"],
            order_id=order_id,
            created_at=runtime.ledger.clock(),
            request=body.model_dump(mode="json"),
            plan=answer,
            model_versions=answer.get("models", {}),
            mode=str(answer.get("mode", "")),
            degraded=bool(answer.get("degraded")),
        )
    )


@router.post("/route", response_model=RouteResponse)
def route_order(body: OrderIn, runtime: RuntimeDep, _: RouteScope, tasks: BackgroundTasks) -> Any:
    """Route an order without reserving stock. `mode` overrides the default routing mode."""
    answer = decide(body, runtime)
    tasks.add_task(audit, runtime, body, answer)
    return answer


@router.get("/decisions/{decision_id}")
def get_decision(decision_id: PathLongId, runtime: RuntimeDep, _: RouteScope) -> Any:
    """The stored audit record of a decision, with its shadow plan when shadow mode is on."""
    runtime.audits.flush()  # this worker's decisions answered so far are all readable
    ledger = runtime.ledger
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
