"""What the console's pages show, built from the ledger, the runtime and the registry; and the
translation between HTML form fields and the API's request bodies (validated by the same
pydantic models the API uses)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving.console.svg import MapPoint, order_map
from serving.destinations import locate
from serving.ledger import NodeRecord, OrderView
from serving.problems import RoutecastError
from serving.runtime import Runtime
from serving.schemas.order import Destination
from serving.settings import Settings

log = logging.getLogger("routecast.console")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# -- orders -------------------------------------------------------------------------------


def order_detail(view: OrderView, runtime: Runtime) -> dict[str, Any]:
    """The order's request, its decision (promise, per-line rankings, explanation) and the map
    of its destination and candidate nodes."""
    request = view.plan.get("request") or {}
    decision = view.plan.get("decision") or {}
    chosen = {a.node_id for a in view.allocations if a.status in ("reserved", "shipped")}
    rankings = []
    candidates: dict[str, str] = {}
    for line in decision.get("ranking") or []:
        entries = list(line.get("candidates") or [])
        for e in entries:
            kind = "chosen" if e["node_id"] in chosen else "eligible" if e["eligible"] else "fenced"
            if candidates.get(e["node_id"]) != "chosen":
                candidates[e["node_id"]] = kind
        rankings.append(
            {
                "line_id": line.get("line_id"),
                "sku": line.get("sku"),
                "qty": line.get("qty"),
                "eligible": [e for e in entries if e["eligible"]],
                "fenced": [e for e in entries if not e["eligible"]],
            }
        )
    return {
        "request": request,
        "decision": decision,
        "promise": decision.get("promise"),
        "rankings": rankings,
        "chosen": chosen,
        "map": _map(request, candidates, runtime),
    }


def _map(request: dict[str, Any], candidates: dict[str, str], runtime: Runtime) -> Any:
    points: list[MapPoint] = []
    try:
        dest = locate(Destination.model_validate(request.get("destination") or {}))
        label = str((request.get("destination") or {}).get("postal_code") or "destination")
        points.append(MapPoint(label, dest.lat, dest.lon, "destination"))
    except (ValidationError, RoutecastError):
        pass  # the map then shows the candidate nodes alone
    for node in runtime.nodes:
        kind = candidates.get(node.node_id)
        if kind is not None and node.lat is not None and node.lon is not None:
            points.append(MapPoint(node.node_id, node.lat, node.lon, kind, node.node_type))
    return order_map(points)


# -- node forms ---------------------------------------------------------------------------


def calendar_fields(doc: dict[str, Any], rec: NodeRecord) -> dict[str, str]:
    """A stored calendar as the form's text fields (one per weekday, holidays, closures)."""
    hours = doc.get("weekly_hours")
    out = {
        "daily_capacity": str(rec.daily_capacity),
        "enabled": "on" if rec.enabled else "",
        "hours_set": "on" if hours is not None else "",
        "cutoff": str(doc.get("cutoff") or ""),
        "holidays": "\n".join(str(d) for d in doc.get("holidays") or []),
        "closures": "\n".join(
            " | ".join(str(c.get(k) or "") for k in ("start", "end", "reason")).rstrip(" |")
            for c in doc.get("closures") or []
        ),
    }
    for day in WEEKDAYS:
        out[f"hours_{day}"] = ", ".join((hours or {}).get(day) or [])
    return out


class FormError(ValueError):
    """A form field that cannot become a request body; ``errors`` maps field to message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def calendar_from_fields(fields: dict[str, str]) -> dict[str, Any]:
    """The calendar document the API's ``PUT /v1/nodes/{id}/calendar`` takes, from the form.

    Opening hours are sent only when the "set opening hours" box is ticked (otherwise the node
    works every day, all day); a closure line reads ``start | end | reason``. Raises
    ``FormError`` for a line that is not of that form."""
    errors: dict[str, str] = {}
    doc: dict[str, Any] = {}
    if fields.get("hours_set") == "on":
        doc["weekly_hours"] = {
            day: [s.strip() for s in fields.get(f"hours_{day}", "").split(",") if s.strip()]
            for day in WEEKDAYS
        }
    doc["holidays"] = [
        d.strip() for d in fields.get("holidays", "").replace(",", "\n").splitlines() if d.strip()
    ]
    closures = []
    for i, line in enumerate(fields.get("closures", "").splitlines()):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or not parts[0] or not parts[1]:
            errors["closures"] = f"line {i + 1}: write 'start | end | reason'"
            continue
        closure = {"start": parts[0], "end": parts[1]}
        if len(parts) > 2 and parts[2]:
            closure["reason"] = " | ".join(parts[2:])
        closures.append(closure)
    doc["closures"] = closures
    if fields.get("cutoff", "").strip():
        doc["cutoff"] = fields["cutoff"].strip()
    if errors:
        raise FormError(errors)
    return doc


#: Form field of the first element of a validation error's location.
_FIELD_OF = {"weekly_hours": "hours", "daily_capacity": "daily_capacity"}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """Pydantic's errors keyed by the form field that holds the value."""
    out: dict[str, str] = {}
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        head = loc[0] if loc else "form"
        name = _FIELD_OF.get(head, head)
        if head == "weekly_hours" and len(loc) > 1:
            name = f"hours_{loc[1]}"
        where = ".".join(loc)
        out.setdefault(name, f"{where}: {err['msg']}")
    return out


# -- models -------------------------------------------------------------------------------

_MODELS_CACHE: dict[str, tuple[float, list[dict[str, Any]]]] = {}
#: Registry reads are cached this long (the registry is a database, not the request path).
MODELS_CACHE_S = 30.0


def models_served(runtime: Runtime) -> list[dict[str, Any]]:
    """Per model role: the champion loaded in this process, and the champion and challenger
    aliases in the registry with their review metrics (cached for ``MODELS_CACHE_S``)."""
    uri = runtime.settings.tracking_uri
    hit = _MODELS_CACHE.get(uri)
    loaded = {role: runtime.models.get(role) for role in runtime.models.names}
    if hit is None or time.monotonic() - hit[0] > MODELS_CACHE_S:
        hit = (time.monotonic(), _registry(runtime))
        _MODELS_CACHE[uri] = hit
    out = []
    for row in hit[1]:
        model = loaded.get(row["role"])
        out.append(
            {
                **row,
                "serving_version": model.version if model else None,
                "loaded_at": model.loaded_at.isoformat(timespec="seconds") if model else None,
                "error": runtime.models.errors().get(row["role"]),
            }
        )
    return out


def _registry(runtime: Runtime) -> list[dict[str, Any]]:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    s = runtime.settings
    client = MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.tracking_uri)
    rows = []
    for role, name in runtime.models.names.items():
        versions = []
        for alias in (s.model_alias, s.challenger_alias):
            try:
                mv = client.get_model_version_by_alias(name, alias)
            except MlflowException:
                continue
            metrics: dict[str, float] = {}
            try:
                if mv.run_id:
                    metrics = dict(client.get_run(mv.run_id).data.metrics)
            except MlflowException:
                log.warning("no run for %s v%s", name, mv.version)
            versions.append(
                {
                    "alias": alias,
                    "version": str(mv.version),
                    "run_id": mv.run_id,
                    "metrics": sorted(metrics.items()),
                    "verdict": (mv.tags or {}).get("gate_verdict"),
                }
            )
        rows.append({"role": role, "name": name, "versions": versions})
    return rows


# -- backtest -----------------------------------------------------------------------------


def backtest_root(settings: Settings) -> Path:
    return Path(settings.home) / "backtest"


def latest_backtest(root: Path) -> dict[str, Any] | None:
    """The newest ``report.md`` under ``root`` and its plots (paths relative to ``root``)."""
    if not root.is_dir():
        return None
    reports = sorted(root.rglob("report.md"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not reports:
        return None
    folder = reports[0].parent
    return {
        "name": str(folder.relative_to(root)),
        "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(reports[0].stat().st_mtime)),
        "plots": [str(p.relative_to(root)) for p in sorted(folder.glob("plots/*.png"))],
    }
