"""Fuzz the API against its own OpenAPI document, plus a catalogue of hand-made bad inputs.

* **schemathesis**: for every operation in ``/openapi.json``, hypothesis draws requests from
  the schema (valid and, in ``negative`` mode, deliberately invalid) and every answer is
  checked: no 5xx, status code, content type, headers and body documented by the schema.
* **catalogue**: requests no schema generator would think of (non-finite and huge numbers,
  far dates, NUL and lone surrogates, oversized bodies and collections, unknown fields, wrong
  types, non-JSON) must each get a 4xx RFC 9457 problem that names the field.

Both run in-process against a real app (real ledger database, real models and features).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LEAKS = ("Traceback", "sqlalchemy", "psycopg", "SELECT ", "INSERT ", 'File "')


def leaked(body: str, sent: str = "") -> list[str]:
    """The internals ``body`` shows (stack traces, driver or SQL text) that the request did not
    itself carry: a 422 may quote the client's own input back, which leaks nothing."""
    return [leak for leak in LEAKS if leak in body and leak not in sent]


def _sent(case: Any) -> str:
    """Everything a fuzzed case put on the wire, as text (raw and JSON-escaped)."""
    parts = [case.body, case.path_parameters, case.query, case.headers, case.cookies]
    text = " ".join(str(p) for p in parts if p is not None)
    try:
        return text + " " + json.dumps(parts, default=str)
    except (TypeError, ValueError):
        return text


@dataclass
class FuzzResult:
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    no_answer: list[str] = field(default_factory=list)
    operations: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "operations": self.operations,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "server_errors": len(self.server_errors),
            "schema_mismatches": len(self.mismatches),
            "no_answer": len(self.no_answer),
            "examples": (self.server_errors + self.mismatches)[:10],
            "seconds": round(self.seconds, 1),
        }


def schema_fuzz(app: Any, headers: dict[str, str], *, examples: int, seed: int = 0) -> FuzzResult:
    """Run ``examples`` generated cases per operation and mode (positive and negative)."""
    import hypothesis
    import hypothesis.errors
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    result = FuzzResult()
    t0 = time.perf_counter()

    def check(case: Any, label: str) -> None:
        try:
            response = case.call(headers=headers, timeout=120)
        except Exception as exc:  # no answer at all (e.g. a timeout on a loaded machine)
            result.no_answer.append(f"{label}: {type(exc).__name__}")
            return
        result.requests += 1
        result.by_status[response.status_code] += 1
        label = f"{label} -> {response.status_code}"
        if response.status_code >= 500:
            result.server_errors.append(f"{label}: {response.text[:200]}")
            return
        if leaked(response.text, _sent(case)):
            result.mismatches.append(f"{label}: body leaks internals: {response.text[:300]!r}")
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except BaseException as exc:  # a failure group: record it, keep fuzzing
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            result.mismatches.append(f"{label}: {str(exc).strip().splitlines()[0][:300]}")

    def runner(strategy: Any, label: str) -> Callable[[], None]:
        @hsettings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.generate],
        )
        @hypothesis.seed(seed)
        @given(case=strategy)
        def run(case: Any) -> None:
            check(case, label)

        return run  # type: ignore[no-any-return]

    for op_result in schema.get_all_operations():
        operation = op_result.ok()
        result.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            try:
                runner(strategy, f"{mode.value} {operation.label}")()
            except hypothesis.errors.Unsatisfiable:  # nothing to negate (no parameters)
                continue
    result.seconds = time.perf_counter() - t0
    return result


# -- the catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInput:
    name: str
    method: str
    path: str
    field: str  # what the problem must name ("" = any 4xx problem will do)
    body: str | bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None  # exact status when it matters


def _order(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "order_id": "BAD-1",
        "destination": {"country": "US", "postal_code": "10001"},
        "lines": [{"line_id": "1", "sku": "SKU-00001", "qty": 1}],
    }
    base.update(over)
    return base


def _line(**over: Any) -> str:
    body = _order()
    body["lines"][0].update(over)
    return json.dumps(body)


def _event(**over: Any) -> str:
    e = {
        "event_id": "e1",
        "event_time": datetime.now(UTC).isoformat(),
        "node_id": "{node}",
        "sku": "SKU-00001",
        "kind": "delta",
        "qty": 1,
    }
    e.update(over)
    return json.dumps({"events": [e]})


def catalogue() -> list[BadInput]:
    """Hand-made bad requests; ``{node}`` is replaced by a real node id."""
    raw_qty = [
        ("1e400", "huge float"),
        ("Infinity", "Infinity"),
        ("NaN", "NaN"),
        ("-1", "negative"),
        ("0", "zero"),
        ("2.5", "fraction"),
        ("5e-324", "denormal"),
        ("9223372036854775808", "2^63"),
        ('"3"x', "broken JSON"),
    ]
    items: list[BadInput] = []
    for text, what in raw_qty:
        body = _line().replace('"qty": 1', f'"qty": {text}')
        for path in ("/v1/route", "/v1/orders"):
            items.append(
                BadInput(
                    f"qty {what} on {path}",
                    "POST",
                    path,
                    "" if "JSON" in what else "lines.0.qty",
                    body,
                )
            )
    strings = {
        "NUL": "a\u0000b",
        "lone surrogate": "\ud800",
        "control char": "a\u0007",
        "65 chars": "x" * 65,
        "empty": "",
    }
    for what, value in strings.items():
        items.append(BadInput(f"sku {what}", "POST", "/v1/route", "lines.0.sku", _line(sku=value)))
        items.append(
            BadInput(
                f"order_id {what}",
                "POST",
                "/v1/orders",
                "order_id",
                json.dumps(_order(order_id=value)),
            )
        )
        items.append(
            BadInput(
                f"event node_id {what}",
                "POST",
                "/v1/inventory/adjustments",
                "events.0.node_id",
                _event(node_id=value),
            )
        )
    for when in (
        "9999-12-31T23:00:00-14:00",
        "9999-12-31T23:00:00+14:00",
        "0001-01-01T00:00:00+14:00",
        "2099-01-01T00:00:00Z",
        "2026-01-01T00:00:00",
        "not a date",
        "2026-02-30T00:00:00Z",
    ):
        items.append(
            BadInput(
                f"event_time {when}",
                "POST",
                "/v1/inventory/adjustments",
                "events.0.event_time",
                _event(event_time=when),
            )
        )
    for when in ("9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+14:00", "not a date"):
        items.append(
            BadInput(
                f"closure end {when}",
                "PUT",
                "/v1/nodes/{node}/calendar",
                "closures.0.end",
                json.dumps({"closures": [{"start": "2026-01-01T00:00", "end": when}]}),
            )
        )
    for qty in (2**63, 10**30, -(10**12)):
        items.append(
            BadInput(
                f"adjustment qty {qty}",
                "POST",
                "/v1/inventory/adjustments",
                "events.0.qty",
                _event(qty=qty),
            )
        )
    items += [
        BadInput(
            "capacity 2^31",
            "PUT",
            "/v1/nodes/{node}/capacity",
            "daily_capacity",
            json.dumps({"daily_capacity": 2**31}),
        ),
        BadInput(
            "capacity negative",
            "PUT",
            "/v1/nodes/{node}/capacity",
            "daily_capacity",
            json.dumps({"daily_capacity": -1}),
        ),
        BadInput(
            "capacity as string",
            "PUT",
            "/v1/nodes/{node}/capacity",
            "daily_capacity",
            json.dumps({"daily_capacity": "many"}),
        ),
        BadInput(
            "101 closures",
            "PUT",
            "/v1/nodes/{node}/calendar",
            "closures",
            json.dumps(
                {"closures": [{"start": "2030-01-01T00:00", "end": "2030-01-01T00:30"}] * 101}
            ),
        ),
        BadInput(
            "weekly_hours unknown day",
            "PUT",
            "/v1/nodes/{node}/calendar",
            "weekly_hours",
            json.dumps({"weekly_hours": {"someday": ["08:00-20:00"]}}),
        ),
        BadInput(
            "weekly_hours bad span",
            "PUT",
            "/v1/nodes/{node}/calendar",
            "weekly_hours",
            json.dumps({"weekly_hours": {"mon": ["8-20"]}}),
        ),
        BadInput(
            "100,000 rejected line ids",
            "POST",
            "/v1/orders/BAD-1/rejections",
            "line_ids",
            json.dumps(
                {
                    "node_id": "{node}",
                    "line_ids": [str(i) for i in range(100_000)],
                    "reason": "damaged",
                }
            ),
        ),
        BadInput(
            "1,001 shipped line ids",
            "POST",
            "/v1/orders/BAD-1/shipments",
            "line_ids",
            json.dumps({"line_ids": [str(i) for i in range(1001)]}),
        ),
        BadInput(
            "1,001 order lines",
            "POST",
            "/v1/route",
            "lines",
            json.dumps(
                _order(
                    lines=[{"line_id": str(i), "sku": "SKU-00001", "qty": 1} for i in range(1001)]
                )
            ),
        ),
        BadInput(
            "10,001 inventory events",
            "POST",
            "/v1/inventory/adjustments",
            "events",
            json.dumps({"events": [json.loads(_event())["events"][0]] * 10_001}),
        ),
        BadInput("unknown field", "POST", "/v1/route", "colour", json.dumps(_order(colour="red"))),
        BadInput(
            "unknown reason",
            "POST",
            "/v1/orders/BAD-1/rejections",
            "reason",
            json.dumps({"node_id": "n", "line_ids": ["1"], "reason": "bored"}),
        ),
        BadInput("lines not a list", "POST", "/v1/route", "lines", json.dumps(_order(lines="1"))),
        BadInput("body is a list", "POST", "/v1/route", "", json.dumps([_order()])),
        BadInput("not JSON", "POST", "/v1/route", "", "{order_id: A-1"),
        BadInput(
            "text/plain body",
            "POST",
            "/v1/route",
            "",
            "hello",
            headers=(("content-type", "text/plain"),),
        ),
        BadInput("empty body", "POST", "/v1/orders", "", ""),
        BadInput(
            "latitude Infinity",
            "POST",
            "/v1/route",
            "destination.lat",
            json.dumps(_order(destination={"lat": 1e400, "lon": 0})),
        ),
        BadInput(
            "promise_days 1e308",
            "POST",
            "/v1/route",
            "promise_days",
            json.dumps(_order(promise_days=1e308)),
        ),
        BadInput(
            "empty Idempotency-Key",
            "POST",
            "/v1/orders",
            "idempotency-key",
            json.dumps(_order()),
            headers=(("idempotency-key", ""),),
        ),
        BadInput("NUL in path order id", "GET", "/v1/orders/a%00b", "order_id"),
        BadInput("129-char path order id", "GET", "/v1/orders/" + "o" * 129, "order_id"),
        BadInput("65-char path SKU", "GET", "/v1/inventory/" + "S" * 65, "sku"),
        BadInput(
            "NUL in path node id",
            "PUT",
            "/v1/nodes/a%00/capacity",
            "node_id",
            json.dumps({"daily_capacity": 1}),
        ),
        BadInput("skus limit 0", "GET", "/v1/skus?limit=0", "limit"),
        BadInput("events after 2^31", "GET", "/v1/events?after=2147483648", "after"),
        BadInput("events order_id NUL", "GET", "/v1/events?order_id=a%00", "order_id"),
        BadInput("shadow since overflow", "GET", "/v1/shadow/summary?since=99999999999d", "since"),
        BadInput(
            "shadow since year 9999",
            "GET",
            "/v1/shadow/summary?since=9999-12-31T23:00-14:00",
            "since",
        ),
        BadInput("skus limit huge", "GET", "/v1/skus?limit=99999999999999999999", "limit"),
        BadInput(
            "5 MB body",
            "POST",
            "/v1/inventory/adjustments",
            "",
            b" " * (5 * 1024 * 1024),
            status=413,
        ),
    ]
    return items


def sender(client: Any) -> Callable[[BadInput], Any]:
    """Send a catalogue item through an httpx-like client (JSON content type by default)."""

    def send(item: BadInput) -> Any:
        headers = dict(item.headers) or {"content-type": "application/json"}
        return client.request(item.method, item.path, content=item.body, headers=headers)

    return send


def openapi_conformance(app: Any) -> Callable[[str, str, Any], str]:
    """A judge of answers seen outside schemathesis's own cases (the catalogue): ``""`` when
    the app's OpenAPI document documents the answer's status and content type and its body
    matches the documented schema, else why not."""
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    def judge(method: str, path: str, response: Any) -> str:
        operation = schema.find_operation_by_path(method, path.split("?", 1)[0])
        if operation is None:
            return ""  # not an API operation (e.g. a path the router refuses before matching)
        if operation.responses.find_by_status_code(response.status_code) is None:
            return f"status {response.status_code} is not documented for {operation.label}"
        answer = schemathesis.Response.from_httpx(response, verify=False)
        media = response.headers.get("content-type", "").split(";")[0].strip()
        documented = schema.get_content_types(operation, answer)
        if media and documented and media not in documented:
            return f"content type {media} is not documented for {operation.label} {response.status_code}"
        try:
            schema.validate_response(operation, answer)
        except BaseException as exc:  # a failure group: report its first line
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return (
                f"body does not match {operation.label}: {str(exc).strip().splitlines()[0][:200]}"
            )
        return ""

    return judge


def run_catalogue(
    send: Callable[[BadInput], Any],
    node_id: str,
    conforms: Callable[[str, str, Any], str] | None = None,
) -> dict[str, Any]:
    """Send every bad input; each must be a 4xx problem naming its field and leaking nothing,
    and (with ``conforms``) be an answer the OpenAPI document describes."""
    failures: list[str] = []
    mismatches: list[str] = []
    by_status: Counter[int] = Counter()
    items = catalogue()
    for item in items:
        body = item.body
        if isinstance(body, str):
            body = body.replace("{node}", node_id)
        bad = BadInput(
            item.name,
            item.method,
            item.path.replace("{node}", node_id),
            item.field,
            body,
            item.headers,
            item.status,
        )
        r = send(bad)
        by_status[r.status_code] += 1
        why = _judge(bad, r)
        if why:
            failures.append(f"{item.name}: {why}")
        if conforms is not None and (why := conforms(bad.method, bad.path, r)):
            mismatches.append(f"{item.name}: {why}")
    return {
        "inputs": len(items),
        "by_status": {str(k): v for k, v in sorted(by_status.items())},
        "failures": failures,
        "schema_mismatches": mismatches,
    }


def _judge(item: BadInput, r: Any) -> str:
    if item.status is not None and r.status_code != item.status:
        return f"status {r.status_code}, expected {item.status}"
    if not 400 <= r.status_code < 500:
        return f"status {r.status_code}"
    if not r.headers.get("content-type", "").startswith("application/problem+json"):
        return f"content-type {r.headers.get('content-type')}"
    if leaked(r.text):
        return "body leaks internals"
    body = r.json()
    if not item.field:
        return ""
    named = [e.get("field", "") for e in body.get("errors", [])] + [str(body.get("field", ""))]
    if not any(item.field in f for f in named) and item.field not in body.get("detail", ""):
        return f"problem does not name {item.field!r}: {body}"
    return ""
