"""Console pages: thin handlers that call the same functions the API does and render them.

Sign-in takes an API key once and keeps only its id in a signed, HttpOnly, SameSite=Strict
cookie; every form carries a CSRF token bound to that cookie; scopes decide what a page shows
and which forms it offers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from serving.auth import StoredKey, authenticate
from serving.bounds import ID_PATTERN, MAX_ID, MAX_LONG_ID
from serving.console import svg, views
from serving.console.session import (
    COOKIE,
    PRE_COOKIE,
    Session,
    Sessions,
    current_key,
    load_secret,
    may,
)
from serving.console.views import FormError
from serving.ledger import OrderNotFound
from serving.ledger.reporting import OrderFilter
from serving.ledger.tables import ORDER_STATUSES
from serving.node_ops import (
    InvalidCalendar,
    NodeNotFound,
    calendar_doc,
    closed_today,
    find_node,
    set_calendar,
    set_capacity,
)
from serving.reports import kpi_report, kpi_since, node_status, order_timeline
from serving.runtime import Runtime
from serving.schemas.operations import CalendarIn, CapacityIn
from serving.shadow import parse_since, report

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/console", include_in_schema=False)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SEARCH_LIMIT = 200


class Denied(Exception):
    """Raised inside a handler: answer with this response instead (sign-in or 403 page)."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _sessions(request: Request) -> Sessions:
    state = request.app.state
    if getattr(state, "console_sessions", None) is None:
        settings = _runtime(request).settings
        state.console_sessions = Sessions(load_secret(settings), settings.console_session_seconds)
    sessions: Sessions = state.console_sessions
    return sessions


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    key: StoredKey | None = None,
    session: Session | None = None,
) -> Response:
    sessions = _sessions(request)
    ctx = {
        "key": key,
        "may": (lambda area: key is not None and may(key, area)),
        "csrf": sessions.csrf_token(session) if session is not None else "",
        "path": request.url.path,
        "q": quote,
        **context,
    }
    response = templates.TemplateResponse(request, template, ctx, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def _signed_in(request: Request, area: str) -> tuple[StoredKey, Session]:
    """The session's key, if it may see ``area``; else sign-in (303) or a 403 page."""
    sessions = _sessions(request)
    session = sessions.read(request.cookies.get(COOKIE))
    key = current_key(_runtime(request).keys, session)
    if key is None or session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Denied(
            RedirectResponse(f"/console/login?next={quote(target, safe='')}", status_code=303)
        )
    if not may(key, area):
        raise Denied(
            render(
                request,
                "denied.html",
                {"title": "Not allowed", "area": area},
                status_code=403,
                key=key,
                session=session,
            )
        )
    return key, session


async def _form(request: Request, session: Session) -> dict[str, str]:
    """The posted URL-encoded form, after its CSRF token checked out (403 otherwise)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = (
        {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        if ctype == "application/x-www-form-urlencoded"
        else {}
    )
    if not _sessions(request).csrf_ok(session, fields.get("csrf")):
        raise Denied(
            render(
                request,
                "denied.html",
                {"title": "Form expired", "area": "csrf"},
                status_code=403,
            )
        )
    return fields


def _safe_next(target: str | None) -> str:
    """Only a console path is followed after sign-in (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/orders"


# -- sign in and out ----------------------------------------------------------------------


@router.get("")
def home() -> Response:
    return RedirectResponse("/console/orders", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str = "", error: str = "") -> Response:
    cookie, pre = _sessions(request).issue("")
    response = render(
        request,
        "login.html",
        {"title": "Sign in", "next": _safe_next(next), "error": error},
        session=pre,
        status_code=401 if error else 200,
    )
    _set_cookie(request, response, PRE_COOKIE, cookie, 600)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    sessions = _sessions(request)
    pre = sessions.read(request.cookies.get(PRE_COOKIE))
    if pre is None:
        return login_page(request, error="The sign-in form expired; try again.")
    try:
        fields = await _form(request, pre)
    except Denied as denied:
        return denied.response
    runtime = _runtime(request)
    key = authenticate(runtime.keys, fields.get("api_key", "").strip())
    if key is None:
        return login_page(request, next=fields.get("next", ""), error="That API key is not valid.")
    cookie, _ = sessions.issue(key.key_id)
    response = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
    _set_cookie(request, response, COOKIE, cookie, sessions.lifetime_s)
    response.delete_cookie(PRE_COOKIE, path="/console", httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = _sessions(request).read(request.cookies.get(COOKIE))
    if session is not None:
        try:
            await _form(request, session)
        except Denied as denied:
            return denied.response
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
    return response


# -- orders -------------------------------------------------------------------------------


def _valid_id(value: str, most: int) -> bool:
    """The API's id bounds (length, no control characters), so the console sends the
    database nothing the API would refuse."""
    return 0 < len(value) <= most and re.fullmatch(ID_PATTERN, value) is not None


def _day(text: str | None, field: str, errors: dict[str, str]) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        errors[field] = "use a date like 2026-12-01"
        return None


@router.get("/orders")
def orders_page(
    request: Request,
    order_id: str = "",
    status: str = "",
    channel: str = "",
    node_id: str = "",
    date: str = "",
) -> Response:
    try:
        key, session = _signed_in(request, "orders")
    except Denied as denied:
        return denied.response
    errors: dict[str, str] = {}
    for name, value, most in (
        ("order_id", order_id, MAX_LONG_ID),
        ("channel", channel, MAX_ID),
        ("node_id", node_id, MAX_ID),
    ):
        if value and not _valid_id(value.strip(), most):
            errors[name] = f"at most {most} characters, no control characters"
    day = _day(date, "date", errors)
    if status and status not in ORDER_STATUSES:
        errors["status"] = f"one of {', '.join(ORDER_STATUSES)}"
    rows = []
    if not errors:
        rows = _runtime(request).ledger.search_orders(
            OrderFilter(
                order_id=order_id.strip() or None,
                status=status or None,
                channel=channel.strip() or None,
                node_id=node_id.strip() or None,
                placed_from=day,
                placed_to=day + timedelta(days=1) if day else None,
            ),
            limit=SEARCH_LIMIT,
        )
    runtime = _runtime(request)
    return render(
        request,
        "orders.html",
        {
            "title": "Orders",
            "rows": rows,
            "limit": SEARCH_LIMIT,
            "errors": errors,
            "statuses": ORDER_STATUSES,
            "channels": runtime.policy.channel_names,
            "form": {
                "order_id": order_id,
                "status": status,
                "channel": channel,
                "node_id": node_id,
                "date": date,
            },
        },
        key=key,
        session=session,
    )


@router.get("/orders/{order_id:path}")
def order_page(request: Request, order_id: str) -> Response:
    try:
        key, session = _signed_in(request, "orders")
    except Denied as denied:
        return denied.response
    runtime = _runtime(request)
    try:
        if not _valid_id(order_id, MAX_LONG_ID):
            raise OrderNotFound(order_id)
        view = runtime.ledger.get_order(order_id)
    except OrderNotFound:
        return render(
            request,
            "missing.html",
            {"title": "Order not found", "what": f"order {order_id}"},
            status_code=404,
            key=key,
            session=session,
        )
    detail = views.order_detail(view, runtime)
    detail["timeline"] = order_timeline(runtime.ledger, order_id)
    return render(
        request,
        "order.html",
        {"title": f"Order {order_id}", "o": view, **detail, "svg": svg},
        key=key,
        session=session,
    )


# -- nodes --------------------------------------------------------------------------------


@router.get("/nodes")
def nodes_page(request: Request) -> Response:
    try:
        key, session = _signed_in(request, "nodes")
    except Denied as denied:
        return denied.response
    now = datetime.now(UTC)
    return render(
        request,
        "nodes.html",
        {"title": "Nodes", "rows": node_status(_runtime(request).ledger, now), "now": now},
        key=key,
        session=session,
    )


def _node_form(
    request: Request,
    node_id: str,
    key: StoredKey,
    session: Session,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    notice: str = "",
    status_code: int = 200,
) -> Response:
    runtime = _runtime(request)
    try:
        rec = find_node(runtime.ledger, node_id)
    except NodeNotFound:
        return render(
            request,
            "missing.html",
            {"title": "Node not found", "what": f"node {node_id}"},
            status_code=404,
            key=key,
            session=session,
        )
    now = datetime.now(UTC)
    status = next(r for r in node_status(runtime.ledger, now) if r["node_id"] == node_id)
    return render(
        request,
        "node.html",
        {
            "title": f"Node {node_id}",
            "n": rec,
            "s": status,
            "errors": errors or {},
            "values": {**views.calendar_fields(calendar_doc(rec), rec), **(values or {})},
            "notice": notice,
        },
        status_code=status_code,
        key=key,
        session=session,
    )


@router.get("/nodes/{node_id}")
def node_page(request: Request, node_id: str) -> Response:
    try:
        key, session = _signed_in(request, "nodes")
    except Denied as denied:
        return denied.response
    return _node_form(request, node_id, key, session)


Edit = Callable[[Runtime, dict[str, str]], str]


async def _edit(request: Request, node_id: str, edit: Edit) -> Response:
    """Run a node edit from a posted form: signed in with ``admin``, CSRF checked, then the
    same validation and ledger call as the API; errors come back beside the fields (422)."""
    try:
        key, session = _signed_in(request, "edit_nodes")
        fields = await _form(request, session)
    except Denied as denied:
        return denied.response
    try:
        notice = edit(_runtime(request), fields)
    except NodeNotFound:
        return _node_form(request, node_id, key, session)  # renders the 404 page
    except (ValidationError, InvalidCalendar, FormError) as exc:
        errors = (
            views.field_errors(exc)
            if isinstance(exc, ValidationError)
            else exc.errors
            if isinstance(exc, FormError)
            else {"calendar": exc.detail}
        )
        return _node_form(
            request, node_id, key, session, errors=errors, values=fields, status_code=422
        )
    return _node_form(request, node_id, key, session, notice=notice)


@router.post("/nodes/{node_id}/capacity")
async def node_capacity(request: Request, node_id: str) -> Response:
    def edit(runtime: Runtime, fields: dict[str, str]) -> str:
        body = CapacityIn.model_validate(
            {
                "daily_capacity": fields.get("daily_capacity", "").strip() or None,
                "enabled": fields.get("enabled") == "on",
            }
        )
        set_capacity(runtime.ledger, runtime.catalogue, node_id, body)
        return "Capacity saved."

    return await _edit(request, node_id, edit)


@router.post("/nodes/{node_id}/calendar")
async def node_calendar_edit(request: Request, node_id: str) -> Response:
    def edit(runtime: Runtime, fields: dict[str, str]) -> str:
        doc = views.calendar_from_fields(fields)
        set_calendar(runtime.ledger, runtime.catalogue, node_id, CalendarIn.model_validate(doc))
        return "Calendar saved."

    return await _edit(request, node_id, edit)


@router.post("/nodes/{node_id}/close-today")
async def node_close_today(request: Request, node_id: str) -> Response:
    def edit(runtime: Runtime, fields: dict[str, str]) -> str:
        reason = fields.get("reason", "").strip() or "closed from the console"
        doc = closed_today(find_node(runtime.ledger, node_id), datetime.now(UTC), reason)
        set_calendar(runtime.ledger, runtime.catalogue, node_id, CalendarIn.model_validate(doc))
        return "Closed for the rest of today."

    return await _edit(request, node_id, edit)


# -- KPIs, models, shadow and backtest ----------------------------------------------------


@router.get("/kpis")
def kpis_page(request: Request, since: str = "7d") -> Response:
    try:
        key, session = _signed_in(request, "kpis")
    except Denied as denied:
        return denied.response
    errors: dict[str, str] = {}
    try:
        at = kpi_since(since)
    except ValueError as exc:
        errors["since"] = str(exc)
        at = datetime.now(UTC) - timedelta(days=7)
    return render(
        request,
        "kpis.html",
        {
            "title": "KPIs",
            "k": kpi_report(_runtime(request).ledger, at),
            "since": since,
            "errors": errors,
        },
        key=key,
        session=session,
        status_code=422 if errors else 200,
    )


@router.get("/models")
def models_page(request: Request) -> Response:
    try:
        key, session = _signed_in(request, "models")
    except Denied as denied:
        return denied.response
    runtime = _runtime(request)
    return render(
        request,
        "models.html",
        {
            "title": "Models",
            "models": views.models_served(runtime),
            "mlflow_ui": runtime.settings.mlflow_ui_url,
        },
        key=key,
        session=session,
    )


@router.get("/shadow")
def shadow_page(request: Request, since: str = "7d") -> Response:
    try:
        key, session = _signed_in(request, "shadow")
    except Denied as denied:
        return denied.response
    runtime = _runtime(request)
    errors: dict[str, str] = {}
    try:
        at = parse_since(since)
    except ValueError as exc:
        errors["since"] = str(exc)
        at = None
    summary = report(runtime.ledger, at)
    shadow = runtime.policy.shadow
    return render(
        request,
        "shadow.html",
        {
            "title": "Shadow and backtest",
            "summary": summary,
            "shadow_mode": shadow.mode if shadow is not None else None,
            "since": since,
            "errors": errors,
            "backtest": views.latest_backtest(views.backtest_root(runtime.settings)),
        },
        key=key,
        session=session,
    )


@router.get("/backtest/{path:path}")
def backtest_file(request: Request, path: str) -> Response:
    try:
        _signed_in(request, "shadow")
    except Denied as denied:
        return denied.response
    root = views.backtest_root(_runtime(request).settings).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or target.suffix != ".png" or not target.is_file():
        return Response("not found", status_code=404)
    return FileResponse(target, media_type="image/png", headers=SECURITY_HEADERS)
