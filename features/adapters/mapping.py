"""Bring your own history: CSV/parquet exports → canonical tables through one YAML mapping.

A mapping names, for each logical table, the file(s) it comes from and how each field is
read (rename, constant, id padding or prefix, unit, time zone, fill, clip). Two kinds of
tables are understood:

* ``sources`` build the **delivery history** the delivery model learns from: ``orders``
  (one row per order with purchase / approval / carrier / delivery / promise times and
  the destination), ``order_lines`` (order, node, SKU, price, freight), ``nodes``,
  and optionally ``products`` (weight, category) and ``postal_codes`` (lat/lon per code).
  They are assembled into the canonical ``nodes`` and ``shipments`` tables and the
  ``shipment_facts`` beside them, exactly as ``features.adapters.olist`` does by hand.
* ``tables`` map one file straight onto one canonical table (``inventory_snapshots``,
  ``demand``, ..., or ``hourly_availability`` for shelf-level stock-out hours).

Every table is validated with its pandera contract. A row that fails is not dropped
silently: it lands in ``rejected.csv`` with its file, line, key, field and reason, and the
JSON report counts rows read, written, excluded by a filter and rejected per reason.
"""

from __future__ import annotations

import glob
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
import pandera.pandas as pa
import yaml

from features.adapters.freshretail import FreshRetailTables, HourlyAvailability
from features.adapters.olist import OlistTables, ShipmentFacts
from features.contracts.raw import SCHEMAS

#: Canonical kilograms per unit a weight column may be given in.
WEIGHT_UNITS = {"kg": 1.0, "g": 1e-3, "lb": 0.45359237, "oz": 0.028349523125}
_SPEC_KEYS = {
    "from",
    "value",
    "pad",
    "prefix",
    "upper",
    "unit",
    "scale",
    "timezone",
    "format",
    "fill",
    "clip",
}

#: Field kinds of the delivery-history sources: (kind, required). Optional fields have
#: the default given in ``_DEFAULTS`` when the mapping leaves them out.
SOURCE_FIELDS: dict[str, dict[str, tuple[str, bool]]] = {
    "orders": {
        "order_id": ("str", True),
        "purchased_at": ("time", True),
        "approved_at": ("time", True),
        "carrier_at": ("time", True),
        "delivered_at": ("time", True),
        "promised_at": ("time", True),
        "dest_postal_code": ("str", True),
        "dest_state": ("str", True),
        "dest_lat": ("float", False),
        "dest_lon": ("float", False),
        "carrier": ("str", False),
    },
    "order_lines": {
        "order_id": ("str", True),
        "node_id": ("str", True),
        "sku": ("str", False),
        "quantity": ("int", False),
        "price": ("float", True),
        "freight": ("float", False),
        "weight_kg": ("weight", False),
    },
    "nodes": {
        "node_id": ("str", True),
        "postal_code": ("str", True),
        "city": ("str", False),
        "state": ("str", True),
        "lat": ("float", False),
        "lon": ("float", False),
        "name": ("str", False),
        "node_type": ("str", False),
        "timezone": ("str", False),
    },
    "products": {
        "sku": ("str", True),
        "weight_kg": ("weight", False),
        "category": ("str", False),
    },
    "postal_codes": {
        "postal_code": ("str", True),
        "lat": ("float", True),
        "lon": ("float", True),
    },
}
_DEFAULTS: dict[str, Any] = {
    "carrier": "unknown",
    "quantity": 1,
    "freight": 0.0,
    "node_type": "3pl",
}
#: Kinds of the directly mapped tables' columns that need reading as text (ids keep zeros).
DIRECT_TABLES: dict[str, type[pa.DataFrameModel]] = {
    **SCHEMAS,
    "hourly_availability": HourlyAvailability,
}
OUTPUT_FILES = {
    "nodes": "nodes.parquet",
    "shipments": "shipments.parquet",
    "shipment_facts": "shipment_facts.parquet",
}
REPORT = "import_report.json"
REJECTED = "rejected.csv"


class MappingError(ValueError):
    """The mapping file itself is wrong (unknown table or field, missing file or column)."""


@dataclass
class ImportLog:
    """Rows excluded by a filter or rejected by a contract, and what was filled or clipped."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    adjusted: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        kind: str,
        table: str,
        origin: pd.DataFrame,
        reasons: pd.Series,
        keys: pd.Series | None = None,
    ) -> None:
        """Record one reason per row; ``origin`` (indexed like ``reasons``) holds file and line."""
        if reasons.empty:
            return
        where = origin.loc[reasons.index]
        key = keys.reindex(reasons.index) if keys is not None else None
        for i, reason in enumerate(reasons):
            self.rows.append(
                {
                    "kind": kind,
                    "table": table,
                    "file": where["_file"].iloc[i] if "_file" in where else "",
                    "line": int(where["_line"].iloc[i]) if "_line" in where else "",
                    "key": "" if key is None else str(key.iloc[i]),
                    "reason": reason,
                }
            )

    def count(self, table: str, **values: int) -> None:
        self.counts.setdefault(table, {}).update(values)

    def summary(self) -> dict[str, Any]:
        by_reason = Counter(f"{r['kind']}: {r['table']}: {r['reason']}" for r in self.rows)
        generic = Counter(
            f"{r['kind']}: {r['table']}: {_reason_class(r['reason'])}" for r in self.rows
        )
        return {
            "tables": self.counts,
            "excluded": sum(1 for r in self.rows if r["kind"] == "excluded"),
            "rejected": sum(1 for r in self.rows if r["kind"] == "rejected"),
            "reasons": dict(generic.most_common()),
            "distinct_reasons": len(by_reason),
            "adjusted": dict(self.adjusted),
        }


def _reason_class(reason: str) -> str:
    """The reason without the offending value, for counting."""
    return reason.split(" (value ")[0]


# --------------------------------------------------------------------------- reading


def _files(source: Path, pattern: str) -> list[Path]:
    matches = sorted(Path(p) for p in glob.glob(str(source / pattern)))
    if not matches:
        raise MappingError(f"no file in {source} matches {pattern!r}")
    return matches


def _read(source: Path, pattern: str, text_columns: set[str]) -> pd.DataFrame:
    """Read every matching file; text columns keep leading zeros; remember file and line."""
    frames = []
    for path in _files(source, pattern):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            first_line = 0
        elif path.suffix in (".csv", ".txt", ".gz"):
            header = pd.read_csv(path, nrows=0).columns
            dtype = {c: str for c in header if c in text_columns}
            frame = pd.read_csv(path, dtype=dtype)  # type: ignore[arg-type]
            first_line = 2  # line 1 is the header
        else:
            raise MappingError(f"{path}: only .csv and .parquet files can be imported")
        frame["_file"] = path.name
        frame["_line"] = np.arange(len(frame)) + first_line
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _spec(value: Any, target: str) -> dict[str, Any]:
    spec = {"from": value} if isinstance(value, str) else dict(value or {})
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise MappingError(f"field {target!r}: unknown option(s) {sorted(unknown)}")
    if "from" not in spec and "value" not in spec:
        raise MappingError(f"field {target!r}: give a source column ('from') or a 'value'")
    return spec


def _text_columns(entry: Mapping[str, Any]) -> set[str]:
    """Source columns read as text: everything a str-like field comes from, and join keys."""
    cols = {
        s["from"]
        for t, v in (entry.get("columns") or {}).items()
        if "from" in (s := _spec(v, t)) and ("pad" in s or "prefix" in s or "upper" in s)
    }
    cols |= {j["key"] for j in entry.get("join", [])}
    return cols | set(entry.get("text", []))


def _read_entry(source: Path, name: str, entry: Mapping[str, Any]) -> pd.DataFrame:
    """Read and join one table's file(s) (before any field is mapped)."""
    if "file" not in entry:
        raise MappingError(f"table {name!r}: 'file' is required")
    text = _text_columns(entry)
    frame = _read(source, entry["file"], text)
    for join in entry.get("join", []):
        other = _read(source, join["file"], text).drop(columns=["_file", "_line"])
        on = join["key"]
        for side, f in (("table", frame), (join["file"], other)):
            if on not in f.columns:
                raise MappingError(f"{name}: join column {on!r} is not in {side}")
        if other[on].duplicated().any():
            raise MappingError(f"{name}: {join['file']} has duplicate {on!r} values; joins are n:1")
        frame = frame.merge(other, on=on, how="left", suffixes=("", "_joined"))
    return frame


def _filter_entry(
    frame: pd.DataFrame, name: str, entry: Mapping[str, Any], log: ImportLog
) -> pd.DataFrame:
    """Keep the rows the mapping's ``where`` selects; the others are logged as excluded."""
    read = len(frame)
    for column, allowed in (entry.get("where") or {}).items():
        if column not in frame.columns:
            raise MappingError(f"{name}: filter column {column!r} is not in {entry['file']}")
        allowed = allowed if isinstance(allowed, list) else [allowed]
        keep = frame[column].isin(allowed)
        reasons = frame.loc[~keep, column].map(
            lambda v, c=column, a=allowed: f"{c} not in {a} (value {v!r})"
        )
        log.add("excluded", name, frame, reasons)
        frame = frame[keep]
    log.count(name, read=read, excluded=read - len(frame))
    return frame


# --------------------------------------------------------------------------- fields


def _to_time(values: pd.Series, spec: Mapping[str, Any], default_tz: str) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if "format" in spec:
        parsed = pd.to_datetime(values, format=spec["format"], errors="coerce")
    else:
        # ISO 8601 in any precision (fast); whatever fails is parsed value by value.
        parsed = pd.to_datetime(values, format="ISO8601", errors="coerce")
        retry = parsed.isna() & values.notna()
        if retry.any():
            parsed[retry] = pd.to_datetime(values[retry], format="mixed", errors="coerce")
    tz = spec.get("timezone", default_tz)
    local = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    return local.dt.tz_convert("UTC")


def _field(
    frame: pd.DataFrame,
    target: str,
    spec: Mapping[str, Any],
    kind: str,
    default_tz: str,
    log: ImportLog,
    table: str,
) -> tuple[pd.Series, pd.Series]:
    """One mapped field and, per row, why its value could not be read (empty when fine)."""
    if "value" in spec:
        values = pd.Series([spec["value"]] * len(frame), index=frame.index)
    else:
        if spec["from"] not in frame.columns:
            raise MappingError(f"{table}.{target}: column {spec['from']!r} is not in the source")
        values = frame[spec["from"]]
    raw = values
    missing_before = values.isna()
    if kind == "str":
        values = values.astype("string").str.replace(r"\.0$", "", regex=True)
        if "pad" in spec:
            values = values.str.zfill(int(spec["pad"]))
        if spec.get("upper"):
            values = values.str.upper()
        if "prefix" in spec:
            values = spec["prefix"] + values
        values = values.astype(object).mask(missing_before)
    elif kind == "time":
        values = _to_time(values, spec, default_tz)
    elif kind == "bool":
        truth = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        values = values.astype("string").str.lower().str.replace(r"\.0$", "", regex=True)
        values = values.map(truth).astype(object)
    elif kind in ("float", "int", "weight"):
        values = pd.to_numeric(values, errors="coerce").astype(float)
        if kind == "weight":
            unit = spec.get("unit", "kg")
            if unit not in WEIGHT_UNITS:
                raise MappingError(f"{table}.{target}: unit {unit!r} not in {sorted(WEIGHT_UNITS)}")
            values = values * WEIGHT_UNITS[unit]
        elif "unit" in spec:
            raise MappingError(f"{table}.{target}: only weights take a unit")
        values = values * float(spec.get("scale", 1.0))
    else:  # pragma: no cover - kinds are fixed above
        raise AssertionError(kind)
    unreadable = values.isna() & ~missing_before
    if "fill" in spec:
        filled = values.isna()
        if filled.any():
            log.adjusted[f"{table}.{target}: missing, filled with {spec['fill']!r}"] += int(
                filled.sum()
            )
            values = values.where(~filled, spec["fill"])
        unreadable[:] = False
    if "clip" in spec:
        lo, hi = spec["clip"]
        clipped = values.lt(lo if lo is not None else -np.inf) | values.gt(
            hi if hi is not None else np.inf
        )
        if clipped.any():
            log.adjusted[f"{table}.{target}: clipped to [{lo}, {hi}]"] += int(clipped.sum())
            values = values.clip(lower=lo, upper=hi)
    problem = pd.Series("", index=frame.index, dtype=object)
    if unreadable.any():
        what = {"time": "a time in its time zone", "str": "text"}.get(kind, "a number")
        problem = problem.mask(unreadable, raw.map(lambda v: f"{target}: not {what} (value {v!r})"))
    return values, problem


def map_fields(
    frame: pd.DataFrame,
    table: str,
    columns: Mapping[str, Any],
    kinds: Mapping[str, tuple[str, bool]],
    default_tz: str,
    log: ImportLog,
) -> pd.DataFrame:
    """Map source columns to the table's fields; reject rows whose required fields are unusable."""
    unknown = set(columns) - set(kinds)
    if unknown:
        raise MappingError(f"{table}: unknown field(s) {sorted(unknown)}; known: {sorted(kinds)}")
    absent = [f for f, (_, req) in kinds.items() if req and f not in columns]
    if absent:
        raise MappingError(f"{table}: required field(s) {absent} are not mapped")
    out = pd.DataFrame(index=frame.index)
    problems = pd.Series("", index=frame.index, dtype=object)
    for target, value in columns.items():
        kind, required = kinds[target]
        values, problem = _field(frame, target, _spec(value, target), kind, default_tz, log, table)
        if required:
            problem = problem.mask(problem.eq("") & values.isna(), f"{target}: missing")
        out[target] = values
        problems = problems.where(problems != "", problem)
    for target, (_, _) in kinds.items():
        if target not in out.columns and target in _DEFAULTS:
            out[target] = _DEFAULTS[target]
    out["_file"], out["_line"] = frame["_file"], frame["_line"]
    bad = problems != ""
    first = next(iter(kinds))
    log.add("rejected", table, out, problems[bad], out.get(first))
    return out[~bad]


# --------------------------------------------------------------------------- contracts


def validate_rows(
    frame: pd.DataFrame,
    schema: type[pa.DataFrameModel],
    table: str,
    log: ImportLog,
    key: str,
    origin: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Validate with the table's pandera contract, reject failing rows with the failed check.

    pandera reports a failure per row where it can; a failing coercion hides the range
    checks of the same column, so validation repeats on the survivors until it passes.
    A failure no row can be blamed for (a column missing) is an error in the mapping.
    """
    origin = frame if origin is None else origin
    data = frame.drop(columns=["_file", "_line"], errors="ignore")
    for _ in range(6):
        try:
            return schema.validate(data, lazy=True)
        except pa_errors.SchemaErrors as exc:
            cases = exc.failure_cases
            rowed = cases[cases["index"].notna()]
            if rowed.empty:
                raise MappingError(
                    f"{table} fails its contract as a whole: "
                    + "; ".join(f"{c.column}: {c.check}" for c in cases.itertuples())
                ) from exc
            text = [
                f"{c}: {k} (value {v!r})" if c != schema.__name__ else f"{k}"
                for c, k, v in zip(
                    rowed["column"], rowed["check"], rowed["failure_case"], strict=True
                )
            ]
            reasons = pd.Series(text, index=pd.Index(rowed["index"]).astype(data.index.dtype))
            reasons = reasons.groupby(level=0).agg("; ".join)
            log.add("rejected", table, origin, reasons, data[key])
            data = data.drop(index=reasons.index)
    raise MappingError(f"{table}: validation did not settle")  # pragma: no cover


# --------------------------------------------------------------------------- assembly


def _reject(
    frame: pd.DataFrame,
    bad: pd.Series,
    table: str,
    reason: Callable[[pd.Series], str],
    key: str,
    log: ImportLog,
) -> pd.DataFrame:
    """Drop the ``bad`` rows of ``frame``, each recorded with its reason."""
    if bad.any():
        reasons = frame[bad].apply(reason, axis=1)
        log.add("rejected", table, frame, reasons, frame[key])
    return frame[~bad]


def _place(
    frame: pd.DataFrame,
    code: str,
    places: pd.DataFrame | None,
    table: str,
    key: str,
    log: ImportLog,
) -> pd.DataFrame:
    """Coordinates from the row itself or from its postal code; unplaced rows are rejected."""
    lat, lon = ("dest_lat", "dest_lon") if table == "orders" else ("lat", "lon")
    if places is not None:
        looked = frame[code].map(places["lat"]), frame[code].map(places["lon"])
        frame[lat] = frame[lat].fillna(looked[0]) if lat in frame else looked[0]
        frame[lon] = frame[lon].fillna(looked[1]) if lon in frame else looked[1]
    if lat not in frame:
        raise MappingError(f"{table}: map {lat}/{lon} or give a postal_codes table")
    bad = frame[lat].isna() | frame[lon].isna()
    return _reject(
        frame, bad, table, lambda r: f"{code} has no coordinates (value {r[code]!r})", key, log
    )


def _delivery_history(
    sources: Mapping[str, pd.DataFrame], default_tz: str, log: ImportLog
) -> OlistTables:
    orders, lines, nodes = sources["orders"], sources["order_lines"], sources["nodes"]
    places = None
    if "postal_codes" in sources:
        codes = sources["postal_codes"]
        places = codes.groupby("postal_code")[["lat", "lon"]].mean()
    products = sources.get("products")
    if products is not None:
        dup = products["sku"].duplicated(keep=False)
        products = _reject(
            products, dup, "products", lambda r: f"sku {r['sku']!r} appears twice", "sku", log
        ).set_index("sku")
        if "weight_kg" not in lines.columns and "weight_kg" in products:
            lines = lines.assign(weight_kg=lines["sku"].map(products["weight_kg"]))
        if "category" in products:
            lines = lines.assign(category=lines["sku"].map(products["category"]))
    if "weight_kg" not in lines.columns:
        lines = lines.assign(weight_kg=np.nan)
    no_weight = lines["weight_kg"].isna()
    if no_weight.any():
        log.adjusted["order_lines.weight_kg: no product weight, counted as 0"] += int(
            no_weight.sum()
        )
        lines = lines.assign(weight_kg=lines["weight_kg"].fillna(0.0))

    nodes = _place(nodes, "postal_code", places, "nodes", "node_id", log)
    orders = _place(orders, "dest_postal_code", places, "orders", "order_id", log)

    # The product groups a node ships: every category on its lines (``ships_groups``).
    categories = pd.Series(dtype=object)
    if "category" in lines:
        categories = (
            lines.dropna(subset=["category"])
            .groupby("node_id")["category"]
            .agg(lambda s: ",".join(sorted(set(s))))
        )
    node_frame = pd.DataFrame(
        {
            "node_id": nodes["node_id"],
            "node_type": nodes["node_type"],
            "name": nodes["name"].fillna(nodes["node_id"]) if "name" in nodes else nodes["node_id"],
            "city": nodes["city"].fillna("") if "city" in nodes else "",
            "state": nodes["state"],
            "postal_code": nodes["postal_code"],
            "lat": nodes["lat"],
            "lon": nodes["lon"],
            "timezone": nodes["timezone"].fillna(default_tz) if "timezone" in nodes else default_tz,
            "priority": 0,
            "enabled": True,
            "daily_capacity": 0,
            "handling_cost": 0.0,
            "ships_groups": nodes["node_id"].map(categories).fillna(""),
        },
        index=nodes.index,
    )
    valid_nodes = validate_rows(node_frame, SCHEMAS["nodes"], "nodes", log, "node_id", nodes)

    known_orders = lines["order_id"].isin(sources["orders_all"])
    lines = _reject(
        lines,
        ~known_orders,
        "order_lines",
        lambda r: f"order_id {r['order_id']!r} is not in orders",
        "order_id",
        log,
    )
    known_nodes = lines["node_id"].isin(sources["nodes_all"])
    lines = _reject(
        lines,
        ~known_nodes,
        "order_lines",
        lambda r: f"node_id {r['node_id']!r} is not in nodes",
        "order_id",
        log,
    )
    # Lines of excluded orders follow them quietly (the order is listed as excluded);
    # lines of rejected orders or nodes are listed too, so every lost shipment is counted.
    lines = lines[lines["order_id"].isin(sources["orders_kept"])]
    lines = _reject(
        lines,
        ~lines["order_id"].isin(orders["order_id"]),
        "order_lines",
        lambda r: f"its order was rejected (value {r['order_id']!r})",
        "order_id",
        log,
    )
    lines = _reject(
        lines,
        ~lines["node_id"].isin(valid_nodes["node_id"]),
        "order_lines",
        lambda r: f"its node was rejected (value {r['node_id']!r})",
        "order_id",
        log,
    )
    _reject(
        orders,
        ~orders["order_id"].isin(lines["order_id"]),
        "orders",
        lambda r: "no order line left",
        "order_id",
        log,
    )
    per_shipment = (
        lines.groupby(["order_id", "node_id"], sort=False)
        .agg(
            items=("quantity", "sum"),
            weight_kg=("weight_kg", "sum"),
            price=("price", "sum"),
            freight=("freight", "sum"),
        )
        .reset_index()
    )
    node_state = valid_nodes.set_index("node_id")["state"]
    merged = per_shipment.merge(orders, on="order_id", how="inner")
    merged = merged.sort_values(["purchased_at", "order_id", "node_id"]).reset_index(drop=True)
    days = {
        c: (merged[c] - merged["purchased_at"]).dt.total_seconds() / 86400.0
        for c in ("delivered_at", "promised_at")
    }
    shipment_id = merged["order_id"] + ":" + merged["node_id"]
    shipments = pd.DataFrame(
        {
            "event_timestamp": merged["purchased_at"],
            "shipment_id": shipment_id,
            "order_id": merged["order_id"],
            "node_id": merged["node_id"],
            "dest_region": merged["dest_postal_code"],
            "dest_lat": merged["dest_lat"],
            "dest_lon": merged["dest_lon"],
            "carrier": merged["carrier"],
            "delivery_days": days["delivered_at"],
            "promised_days": days["promised_at"].clip(lower=0.0),
        }
    )
    facts = pd.DataFrame(
        {
            "shipment_id": shipment_id,
            "purchased_at": merged["purchased_at"],
            "approved_at": merged["approved_at"],
            "carrier_at": merged["carrier_at"],
            "delivered_at": merged["delivered_at"],
            "estimated_at": merged["promised_at"],
            "origin_state": merged["node_id"].map(node_state),
            "dest_state": merged["dest_state"],
            "items": merged["items"],
            "weight_kg": merged["weight_kg"],
            "price": merged["price"],
            "freight": merged["freight"],
        }
    )
    origin = merged[["_file", "_line"]].assign(shipment_id=shipment_id)
    good_facts = validate_rows(facts, ShipmentFacts, "shipment_facts", log, "shipment_id", origin)
    good_ships = validate_rows(
        shipments, SCHEMAS["shipments"], "shipments", log, "shipment_id", origin
    )
    keep = good_facts.index.intersection(good_ships.index)
    used = valid_nodes[valid_nodes["node_id"].isin(shipments.loc[keep, "node_id"])]
    log.count("shipments", written=len(keep))
    log.count("nodes", written=len(used))
    return OlistTables(
        nodes=used.reset_index(drop=True),
        shipments=good_ships.loc[keep].reset_index(drop=True),
        facts=good_facts.loc[keep].reset_index(drop=True),
        dropped={},
    )


# --------------------------------------------------------------------------- entry points


def _direct_table(
    name: str, frame: pd.DataFrame, entry: Mapping[str, Any], default_tz: str, log: ImportLog
) -> pd.DataFrame:
    schema = DIRECT_TABLES[name]
    fields = schema.to_schema().columns
    kinds: dict[str, tuple[str, bool]] = {}
    for col, column in fields.items():
        dtype = str(column.dtype)
        kind = (
            "time"
            if "datetime" in dtype
            else "str"
            if dtype in ("str", "string", "object")
            else "bool"
            if dtype == "bool"
            else "float"
        )
        kinds[col] = (kind, False)
    mapped = map_fields(frame, name, entry.get("columns") or {}, kinds, default_tz, log)
    if name == "hourly_availability" and "event_timestamp" not in (entry.get("columns") or {}):
        mapped["event_timestamp"] = mapped["day"] + pd.to_timedelta(mapped["hour"], unit="h")
    key = next(c for c in ("allocation_id", "shipment_id", "node_id", "sku") if c in fields)
    out = validate_rows(mapped, schema, name, log, key, mapped)[list(fields)]
    log.count(name, written=len(out))
    if name == "hourly_availability":
        out = out.sort_values(["node_id", "sku", "event_timestamp"]).reset_index(drop=True)
    return out


@dataclass
class ImportResult:
    tables: dict[str, pd.DataFrame]
    log: ImportLog


def import_history(mapping: Mapping[str, Any], source: Path) -> ImportResult:
    """Apply a parsed mapping to the exports in ``source``; nothing is written."""
    unknown = set(mapping) - {"name", "description", "timezone", "sources", "tables"}
    if unknown:
        raise MappingError(f"unknown top-level key(s) {sorted(unknown)}")
    default_tz = str(mapping.get("timezone", "UTC"))
    log = ImportLog()
    out: dict[str, pd.DataFrame] = {}
    sources = mapping.get("sources") or {}
    if sources:
        extra = set(sources) - set(SOURCE_FIELDS)
        if extra:
            raise MappingError(f"unknown source(s) {sorted(extra)}; known: {sorted(SOURCE_FIELDS)}")
        for need in ("orders", "order_lines", "nodes"):
            if need not in sources:
                raise MappingError(f"delivery history needs a {need!r} source")
        mapped: dict[str, Any] = {}
        for name, entry in sources.items():
            raw = _read_entry(source, name, entry)
            columns = entry.get("columns") or {}
            key = next(iter(SOURCE_FIELDS[name]))
            if key not in columns:
                raise MappingError(f"{name}: required field {key!r} is not mapped")
            # Every id the export holds and those the filter kept: a line of an excluded
            # order follows it quietly, a line of an order that is not there is reported.
            ids = _field(raw, key, _spec(columns[key], key), "str", default_tz, ImportLog(), name)[
                0
            ]
            raw = _filter_entry(raw, name, entry, log)
            mapped[f"{name}_all"] = set(ids.dropna())
            mapped[f"{name}_kept"] = set(ids.loc[raw.index].dropna())
            mapped[name] = map_fields(
                raw, name, entry.get("columns") or {}, SOURCE_FIELDS[name], default_tz, log
            )
        history = _delivery_history(mapped, default_tz, log)
        out |= {
            "nodes": history.nodes,
            "shipments": history.shipments,
            "shipment_facts": history.facts,
        }
    for name, entry in (mapping.get("tables") or {}).items():
        if name not in DIRECT_TABLES:
            raise MappingError(f"unknown table {name!r}; known: {sorted(DIRECT_TABLES)}")
        if name in out:
            raise MappingError(f"{name!r} comes from the delivery-history sources already")
        raw = _filter_entry(_read_entry(source, name, entry), name, entry, log)
        out[name] = _direct_table(name, raw, entry, default_tz, log)
    if not out:
        raise MappingError("the mapping has neither 'sources' nor 'tables'")
    return ImportResult(out, log)


def load_mapping(path: Path) -> dict[str, Any]:
    try:
        mapping = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"mapping file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"mapping file {path} is not valid YAML: {exc}") from None
    if not isinstance(mapping, dict):
        raise MappingError(f"mapping file {path} must hold a YAML mapping at the top")
    return mapping


def run_import(mapping_file: Path, source: Path, out: Path) -> dict[str, Any]:
    """``routecast import``: write each table as parquet, the rejected rows and a report."""
    if not Path(source).is_dir():
        raise MappingError(f"source directory {source} does not exist")
    result = import_history(load_mapping(mapping_file), Path(source))
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in result.tables.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    rejected = pd.DataFrame(
        result.log.rows, columns=["kind", "table", "file", "line", "key", "reason"]
    )
    rejected.to_csv(out / REJECTED, index=False)
    report = {
        "mapping": str(mapping_file),
        "source": str(source),
        "out": str(out),
        "written": {name: len(frame) for name, frame in result.tables.items()},
        **result.log.summary(),
        "rejected_rows_file": str(out / REJECTED),
    }
    (out / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def read_delivery_history(directory: Path) -> OlistTables:
    """The imported delivery history, validated again (it may have been edited since)."""
    frames = {}
    for name, file in OUTPUT_FILES.items():
        path = Path(directory) / file
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; run `routecast import` into {directory}")
        frames[name] = pd.read_parquet(path)
    return OlistTables(
        nodes=SCHEMAS["nodes"].validate(frames["nodes"]),
        shipments=SCHEMAS["shipments"].validate(frames["shipments"]),
        facts=ShipmentFacts.validate(frames["shipment_facts"]),
        dropped={},
    )


def read_hourly_availability(directory: Path) -> FreshRetailTables:
    path = Path(directory) / "hourly_availability.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `routecast import` into {directory}")
    return FreshRetailTables(hourly=HourlyAvailability.validate(pd.read_parquet(path)))
