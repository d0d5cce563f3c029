"""Dry-run routing: rank nodes and propose a plan; nothing is reserved."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic_core import to_json

from serving.bounds import PathLongId
from serving.decide import decide
from serving.deps import DecisionRoute, RuntimeDep
from serving.ledger.records import DecisionRecord
from serving.problems import DecisionNotFound
from serving.runtime import Runtime
from serving.schemas.order import OrderIn, RouteResponse
from serving.security import RouteScope

router = APIRouter(prefix="/v1", tags=["routing"], route_class=DecisionRoute)


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


async def audit_soon(
    runtime: Runtime, body: OrderIn, answer: dict[str, Any], order_id: str | None = None
) -> None:
    """``audit`` as a background task run in the event loop: it only hands a record to the
    audit writer's queue, so a thread-pool hop would cost more than the work."""
    audit(runtime, body, answer, order_id)


#: What validating an answer against ``RouteResponse`` adds when the key is missing.
_ANSWER_DEFAULTS = {
    name: field.get_default(call_default_factory=True)
    for name, field in RouteResponse.model_fields.items()
    if not field.is_required()
}


def json_response(
    payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``payload`` written to JSON by pydantic-core's serializer (several times faster than
    ``json.dumps`` on a decision answer; non-finite floats become ``null``)."""
    body = to_json(payload, inf_nan_mode="null")
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def answer_response(answer: dict[str, Any]) -> Response:
    """The answer as the ``RouteResponse`` it is, written straight to JSON: the decision
    builds every field itself (``serving.decide``), so FastAPI's response validation would
    only copy it (tests check the two agree)."""
    return json_response({**_ANSWER_DEFAULTS, **answer})


@router.post("/route", response_model=RouteResponse)
async def route_order(
    body: OrderIn, runtime: RuntimeDep, _: RouteScope, tasks: BackgroundTasks
) -> Response:
    """Route an order without reserving stock. `mode` overrides the default routing mode."""
    # The decision runs in the event loop, not the thread pool: it is CPU work under the
    # GIL either way, and in the loop each worker answers its requests one after another
    # instead of time-slicing dozens of them between threads (GIL hand-overs every 5 ms,
    # which stretched every answer under load). The ledger read it does is a SQLite WAL
    # read or one PostgreSQL query, neither of which waits on writers.
    answer = decide(body, runtime)
    tasks.add_task(audit_soon, runtime, body, answer)
    return answer_response(answer)


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
