"""The ledger's operations as canonical history: the same tables the simulator writes, checked by
the same pandera contracts, so features and training read what the service did.

``export_history`` writes one parquet file per table per closed UTC day under
``<raw>/ledger/<table>/<YYYY-MM-DD>.parquet``. A day is rewritten whole on every export that
covers it, so running it twice (or after a crash) gives the same files:

* ``allocations`` — allocations that settled that day (shipped, released or rejected);
  ``rejected`` and the node's reason are the stock-out labels.
* ``shipments`` — shipments whose delivery was confirmed that day; ``delivery_days`` (order to
  delivery) is the delivery-time label, ``promised_days`` what the answer promised.
* ``inventory_snapshots`` — every node×SKU's ledger on-hand at the day's close, replayed from the
  movement log, with days since its last count.
* ``demand`` — units shipped per node×SKU that day.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, select

from features.contracts.raw import validate
from routing import Policy
from serving.destinations import Located, locate
from serving.ledger.tables import movements, order_allocations, orders, shipments
from serving.schemas.order import Destination

TABLES = ("allocations", "shipments", "inventory_snapshots", "demand")
LEDGER_DIR = "ledger"
STATE_FILE = "export_state.json"


@dataclass(frozen=True, slots=True)
class ExportResult:
    days: list[date]
    rows: dict[str, int]
    out_dir: Path


def _day_start(d: date) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _located(plan: dict[str, Any] | None) -> Located | None:
    request = (plan or {}).get("request") or {}
    try:
        return locate(Destination.model_validate(request.get("destination") or {}))
    except Exception:  # an order without a locatable destination yields no label
        return None


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    if "event_timestamp" in frame:
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


ALLOCATION_COLUMNS = [
    "event_timestamp",
    "allocation_id",
    "order_id",
    "node_id",
    "sku",
    "qty",
    "dest_region",
    "dest_lat",
    "dest_lon",
    "rejected",
    "reason",
]


def allocation_outcomes(
    engine: Engine,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    settled_only: bool = True,
) -> pd.DataFrame:
    """Allocations settled in ``[start, end)`` as canonical rows (time = when routed);
    ``settled_only=False`` adds live reservations (not rejected so far)."""
    oa, o = order_allocations, orders
    query = select(oa, o.c.plan).join(o, o.c.order_id == oa.c.order_id)
    if settled_only:
        query = query.where(oa.c.status != "reserved")
    if start is not None:
        query = query.where(oa.c.updated_at >= start)
    if end is not None:
        query = query.where(oa.c.updated_at < end)
    query = query.order_by(oa.c.allocation_id)
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            where = _located(r.plan)
            if where is None:
                continue
            rows.append(
                {
                    "event_timestamp": r.created_at,
                    "allocation_id": f"ledger-{r.allocation_id}",
                    "order_id": r.order_id,
                    "node_id": r.node_id,
                    "sku": r.sku,
                    "qty": int(r.qty),
                    "dest_region": where.region or "??",
                    "dest_lat": where.lat,
                    "dest_lon": where.lon,
                    "rejected": r.status == "rejected",
                    "reason": r.reason,
                }
            )
    return validate("allocations", _frame(rows, ALLOCATION_COLUMNS))


SHIPMENT_COLUMNS = [
    "event_timestamp",
    "shipment_id",
    "order_id",
    "node_id",
    "dest_region",
    "dest_lat",
    "dest_lon",
    "carrier",
    "delivery_days",
    "promised_days",
]


def promised_days(plan: dict[str, Any] | None, ordered_at: datetime) -> float:
    """Days from the order to the end of its promised ``deliver_by`` day at the destination;
    for orders placed before promises were dated, the request's or the policy's promise days."""
    decision = (plan or {}).get("decision") or {}
    promise = decision.get("promise")
    if promise:
        tz = ZoneInfo(promise["timezone"])
        end = datetime.combine(date.fromisoformat(promise["deliver_by"]), time.max, tzinfo=tz)
        return max(0.0, (end - ordered_at).total_seconds() / 86400.0)
    request = (plan or {}).get("request") or {}
    days = request.get("promise_days")
    return float(days) if days else Policy.default().rules(None).promise_days


def delivered_shipments(engine: Engine, start: datetime, end: datetime) -> pd.DataFrame:
    """Shipments delivered in ``[start, end)``; time = when the order was placed."""
    s, o = shipments, orders
    query = (
        select(s, o.c.plan, o.c.created_at.label("ordered_at"))
        .join(o, o.c.order_id == s.c.order_id)
        .where(s.c.delivered_at >= start, s.c.delivered_at < end)
        .order_by(s.c.shipment_id)
    )
    rows = []
    with engine.connect() as conn:
        for r in conn.execute(query):
            where = _located(r.plan)
            if where is None:
                continue
            rows.append(
                {
                    "event_timestamp": r.ordered_at,
                    "shipment_id": r.shipment_id,
                    "order_id": r.order_id,
                    "node_id": r.node_id,
                    "dest_region": where.region or "??",
                    "dest_lat": where.lat,
                    "dest_lon": where.lon,
                    "carrier": r.carrier or "unknown",
                    "delivery_days": max(
                        0.0, (r.delivered_at - r.ordered_at).total_seconds() / 86400.0
                    ),
                    "promised_days": promised_days(r.plan, r.ordered_at),
                }
            )
    return validate("shipments", _frame(rows, SHIPMENT_COLUMNS))


def _movements(engine: Engine, end: datetime) -> pd.DataFrame:
    m = movements
    query = select(
        m.c.at, m.c.event_time, m.c.node_id, m.c.sku, m.c.kind, m.c.d_on_hand, m.c.d_shipped
    ).where(m.c.at < end)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    columns = ["at", "event_time", "node_id", "sku", "kind", "d_on_hand", "d_shipped"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    return frame


def stock_at_close(moves: pd.DataFrame, day: date) -> pd.DataFrame:
    """On-hand per node×SKU at the close of ``day`` (movements in ledger order) and whole days
    since its last count (by the count's own event time)."""
    close = _day_start(day + timedelta(days=1))
    seen = moves[moves["at"] < close]
    columns = ["event_timestamp", "node_id", "sku", "on_hand", "days_since_count"]
    if seen.empty:
        return _frame([], columns)
    keys = ["node_id", "sku"]
    on_hand = seen.groupby(keys)["d_on_hand"].sum()
    counts = seen[seen["kind"] == "count"].groupby(keys)["event_time"].max()
    first = seen.groupby(keys)["event_time"].min()
    last_count = counts.reindex(on_hand.index).fillna(first.reindex(on_hand.index))
    since = ((pd.Timestamp(close) - last_count).dt.total_seconds() // 86400).astype("int64")
    frame = pd.DataFrame(
        {
            "event_timestamp": pd.Timestamp(close - timedelta(microseconds=1)),
            "on_hand": on_hand.clip(lower=0).astype("int64"),
            "days_since_count": since.clip(lower=0),
        }
    ).reset_index()
    return validate("inventory_snapshots", frame[columns])


def demand_of(moves: pd.DataFrame, day: date) -> pd.DataFrame:
    start, end = _day_start(day), _day_start(day + timedelta(days=1))
    shipped = moves[(moves["kind"] == "ship") & (moves["at"] >= start) & (moves["at"] < end)]
    units = shipped.groupby(["node_id", "sku"])["d_shipped"].sum().astype("int64")
    frame = units.rename("units").reset_index()
    frame.insert(0, "event_timestamp", pd.Timestamp(end - timedelta(microseconds=1)))
    return validate("demand", frame[["event_timestamp", "node_id", "sku", "units"]])


def export_history(
    engine: Engine,
    raw_dir: Path,
    *,
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
) -> ExportResult:
    """Write each closed day in ``[since, until)``; returns the days written and rows per table.

    Defaults: from the day after the last export (the ledger's first day the first time) up
    to yesterday, UTC."""
    now = now or datetime.now(UTC)
    until = until or now.astimezone(UTC).date()
    out = raw_dir / LEDGER_DIR
    state = out / STATE_FILE
    moves = _movements(engine, _day_start(until))
    if since is None:
        if state.exists():  # carry on after the last exported day
            since = date.fromisoformat(json.loads(state.read_text())["last_day"]) + timedelta(1)
        elif moves.empty:
            return ExportResult([], dict.fromkeys(TABLES, 0), out)
        else:
            since = moves["at"].min().date()
    days = [since + timedelta(days=k) for k in range((until - since).days)]
    totals = dict.fromkeys(TABLES, 0)
    for day in days:
        start, end = _day_start(day), _day_start(day + timedelta(days=1))
        frames = {
            "allocations": allocation_outcomes(engine, start, end),
            "shipments": delivered_shipments(engine, start, end),
            "inventory_snapshots": stock_at_close(moves, day),
            "demand": demand_of(moves, day),
        }
        for name, frame in frames.items():
            path = out / name / f"{day.isoformat()}.parquet"
            if frame.empty:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            frame.to_parquet(tmp, index=False)
            tmp.replace(path)  # a crash mid-write never leaves half a day
            totals[name] += len(frame)
    if days:
        out.mkdir(parents=True, exist_ok=True)
        last = max(days[-1], _last_exported(state) or days[-1])
        state.write_text(json.dumps({"last_day": last.isoformat()}))
    return ExportResult(days, totals, out)


def _last_exported(state: Path) -> date | None:
    if not state.exists():
        return None
    return date.fromisoformat(json.loads(state.read_text())["last_day"])


def read_exported(raw_dir: Path, table: str) -> pd.DataFrame:
    """Every exported day of one table, concatenated (empty frame when none)."""
    files = sorted((raw_dir / LEDGER_DIR / table).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


#: Columns that identify a row of each appended table (a day exported twice is one row).
ROW_KEYS = {
    "allocations": ["allocation_id"],
    "shipments": ["shipment_id"],
    "inventory_snapshots": ["event_timestamp", "node_id", "sku"],
    "demand": ["event_timestamp", "node_id", "sku"],
}


def merge_history(raw_dir: Path, out_dir: Path) -> dict[str, int]:
    """The canonical tables of ``raw_dir`` (simulated or adapted history) with every exported
    ledger day appended, contract-checked, in ``out_dir``; returns rows per table.

    Tables the ledger does not export (nodes, skus, node_days) are copied unchanged."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for path in sorted(raw_dir.glob("*.parquet")):
        name = path.stem
        frame = pd.read_parquet(path)
        if name in ROW_KEYS:
            ledger = read_exported(raw_dir, name)
            if not ledger.empty:
                frame = pd.concat([frame, validate(name, ledger)], ignore_index=True)
                frame = frame.drop_duplicates(ROW_KEYS[name], keep="last")
                frame = frame.sort_values("event_timestamp", kind="stable", ignore_index=True)
        frame = validate(name, frame) if name in ROW_KEYS else frame
        frame.to_parquet(out_dir / path.name, index=False)
        counts[name] = len(frame)
    return counts
