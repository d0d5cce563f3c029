"""Canonical raw-event tables: the one shape every source (simulation, Olist, CSV) is adapted to.

Feature computation reads only these tables, so a new data source needs an adapter and
nothing else. Timestamps are timezone-aware UTC. Ground truth a simulator knows (true
shelf stock) is never part of a canonical table.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

NODE_TYPES = ("dc", "store", "3pl")

#: file name (without .parquet) of each canonical table inside ``<data_dir>/raw``.
TABLES = ("nodes", "skus", "inventory_snapshots", "demand", "node_days", "allocations", "shipments")


class Nodes(pa.DataFrameModel):
    """Fulfilment nodes. ``ships_groups`` is a comma-separated list of product groups."""

    node_id: Series[str] = pa.Field(unique=True)
    node_type: Series[str] = pa.Field(isin=list(NODE_TYPES))
    name: Series[str]
    city: Series[str]
    state: Series[str] = pa.Field(str_length={"min_value": 2, "max_value": 2})
    postal_code: Series[str]
    lat: Series[float] = pa.Field(ge=-90, le=90)
    lon: Series[float] = pa.Field(ge=-180, le=180)
    timezone: Series[str]
    priority: Series[int] = pa.Field(ge=0)
    enabled: Series[bool]
    daily_capacity: Series[int] = pa.Field(ge=0)
    handling_cost: Series[float] = pa.Field(ge=0)
    ships_groups: Series[str]

    class Config:
        strict = "filter"
        coerce = True


class Skus(pa.DataFrameModel):
    sku: Series[str] = pa.Field(unique=True)
    product_group: Series[str]
    weight_kg: Series[float] = pa.Field(gt=0)
    price: Series[float] = pa.Field(gt=0)

    class Config:
        strict = "filter"
        coerce = True


class InventorySnapshots(pa.DataFrameModel):
    """Recorded (system) on-hand at the end of each day, as the retailer's books show it."""

    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    node_id: Series[str]
    sku: Series[str]
    on_hand: Series[int] = pa.Field(ge=0)
    days_since_count: Series[int] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


class Demand(pa.DataFrameModel):
    """Units sold or shipped from a node for a SKU during the day ending at ``event_timestamp``."""

    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    node_id: Series[str]
    sku: Series[str]
    units: Series[int] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


class NodeDays(pa.DataFrameModel):
    """Daily operations of a node: capacity, orders taken, backlog carried into the next day."""

    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    node_id: Series[str]
    capacity: Series[int] = pa.Field(ge=0)
    orders: Series[int] = pa.Field(ge=0)
    backlog: Series[int] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


class Allocations(pa.DataFrameModel):
    """Every line allocation sent to a node and whether the node rejected it (the stockout label)."""

    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    allocation_id: Series[str] = pa.Field(unique=True)
    order_id: Series[str]
    node_id: Series[str]
    sku: Series[str]
    qty: Series[int] = pa.Field(gt=0)
    dest_region: Series[str]
    dest_lat: Series[float] = pa.Field(ge=-90, le=90)
    dest_lon: Series[float] = pa.Field(ge=-180, le=180)
    rejected: Series[bool]
    reason: Series[str] = pa.Field(nullable=True)

    class Config:
        strict = "filter"
        coerce = True


class Shipments(pa.DataFrameModel):
    """Accepted allocations that shipped; ``delivery_days`` is the delivery-time label."""

    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    shipment_id: Series[str] = pa.Field(unique=True)
    order_id: Series[str]
    node_id: Series[str]
    dest_region: Series[str]
    dest_lat: Series[float] = pa.Field(ge=-90, le=90)
    dest_lon: Series[float] = pa.Field(ge=-180, le=180)
    carrier: Series[str]
    delivery_days: Series[float] = pa.Field(ge=0)
    promised_days: Series[float] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True


SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    "nodes": Nodes,
    "skus": Skus,
    "inventory_snapshots": InventorySnapshots,
    "demand": Demand,
    "node_days": NodeDays,
    "allocations": Allocations,
    "shipments": Shipments,
}


def validate(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate and coerce one canonical table; raises ``pandera.errors.SchemaError`` naming the column."""
    return SCHEMAS[name].validate(frame)
