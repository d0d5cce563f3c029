"""Olist (Brazilian marketplace) → canonical ``nodes`` and ``shipments`` plus shipment facts.

A seller is a fulfilment node, a customer zip prefix a destination region and one
(order, seller) pair a shipment. Olist timestamps are local wall-clock times; they are
labelled UTC so every table shares one clock (only differences and order matter here).
Facts the canonical ``shipments`` table has no column for (items, weight, price, the
seller's hand-over to the carrier) travel beside it in ``facts``, keyed by shipment id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from features.contracts.raw import validate

ORDERS = "olist_orders_dataset.csv"
ITEMS = "olist_order_items_dataset.csv"
CUSTOMERS = "olist_customers_dataset.csv"
SELLERS = "olist_sellers_dataset.csv"
PRODUCTS = "olist_products_dataset.csv"
GEOLOCATION = "olist_geolocation_by_zip_prefix.csv"
REQUIRED_FILES = (ORDERS, ITEMS, CUSTOMERS, SELLERS, PRODUCTS, GEOLOCATION)

_TS_COLUMNS = (
    "order_purchase_timestamp",
    "order_approved_at",
    "order_delivered_carrier_date",
    "order_delivered_customer_date",
    "order_estimated_delivery_date",
)
_DAY = pd.Timedelta(days=1)


class ShipmentFacts(pa.DataFrameModel):
    """Per-shipment facts: known at purchase (items, weight, price) or later (timestamps)."""

    shipment_id: Series[str] = pa.Field(unique=True)
    purchased_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    approved_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    carrier_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    delivered_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    estimated_at: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    origin_state: Series[str] = pa.Field(str_length=2)
    dest_state: Series[str] = pa.Field(str_length=2)
    items: Series[int] = pa.Field(gt=0)
    weight_kg: Series[float] = pa.Field(ge=0)
    price: Series[float] = pa.Field(ge=0)
    freight: Series[float] = pa.Field(ge=0)

    class Config:
        strict = "filter"
        coerce = True

    @pa.dataframe_check
    def delivered_after_purchase(cls, df: pd.DataFrame) -> pd.Series:  # type: ignore[misc]
        return df["delivered_at"] >= df["purchased_at"]


@dataclass(frozen=True)
class OlistTables:
    """Canonical ``nodes`` and ``shipments`` and the matching ``facts`` (same row order)."""

    nodes: pd.DataFrame
    shipments: pd.DataFrame
    facts: pd.DataFrame
    dropped: dict[str, int]


def _zip(series: pd.Series) -> pd.Series:
    return series.astype(str).str.replace(r"\.0$", "", regex=True).str.zfill(5)


def _read(directory: Path, name: str, **kwargs: object) -> pd.DataFrame:
    path = directory / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; expected the Olist CSV layout ({name})")
    return pd.read_csv(path, **kwargs)  # type: ignore[call-overload,no-any-return]


def _geolocation(directory: Path) -> pd.DataFrame:
    geo = _read(directory, GEOLOCATION, dtype={"geolocation_zip_code_prefix": str})
    geo["prefix"] = _zip(geo["geolocation_zip_code_prefix"])
    return geo.groupby("prefix")[["geolocation_lat", "geolocation_lng"]].mean()


def _nodes(sellers: pd.DataFrame, categories: pd.Series) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "node_id": sellers["seller_id"].astype(str),
            # A marketplace seller ships its own parcels: the drop-ship partner type.
            "node_type": "3pl",
            "name": sellers["seller_id"].astype(str),
            "city": sellers["seller_city"].astype(str),
            "state": sellers["seller_state"].astype(str).str.upper(),
            "postal_code": sellers["prefix"],
            "lat": sellers["geolocation_lat"].astype(float),
            "lon": sellers["geolocation_lng"].astype(float),
            "timezone": "America/Sao_Paulo",
            "priority": 0,
            "enabled": True,
            "daily_capacity": 0,
            "handling_cost": 0.0,
            "ships_groups": sellers["seller_id"].map(categories).fillna("").astype(str),
        }
    )
    return validate("nodes", frame.reset_index(drop=True))


def load_olist(directory: Path | str) -> OlistTables:
    """Read an Olist directory; keep delivered orders whose seller and customer can be placed."""
    directory = Path(directory)
    geo = _geolocation(directory)
    orders = _read(directory, ORDERS, parse_dates=list(_TS_COLUMNS))
    items = _read(directory, ITEMS)
    customers = _read(directory, CUSTOMERS, dtype={"customer_zip_code_prefix": str})
    sellers = _read(directory, SELLERS, dtype={"seller_zip_code_prefix": str})
    products = _read(directory, PRODUCTS)

    dropped: dict[str, int] = {}
    delivered = orders["order_status"].eq("delivered") & orders[list(_TS_COLUMNS)].notna().all(
        axis=1
    )
    delivered &= orders["order_delivered_customer_date"] >= orders["order_purchase_timestamp"]
    dropped["not_delivered_or_incomplete"] = int((~delivered).sum())
    orders = orders[delivered]

    customers = customers.assign(dest_region=_zip(customers["customer_zip_code_prefix"]))
    customers = customers.join(geo, on="dest_region", how="inner")
    sellers = sellers.assign(prefix=_zip(sellers["seller_zip_code_prefix"]))
    sellers = sellers.join(geo, on="prefix", how="inner")

    products = products.assign(
        weight_kg=products["product_weight_g"].astype(float).fillna(0.0) / 1000.0,
        category=products["product_category_name"].fillna("unknown").astype(str),
    )[["product_id", "weight_kg", "category"]]
    items = items.merge(products, on="product_id", how="left")
    items["weight_kg"] = items["weight_kg"].fillna(0.0)
    categories = (
        items.dropna(subset=["category"])
        .groupby("seller_id")["category"]
        .agg(lambda s: ",".join(sorted(set(s))))
    )
    lines = (
        items.groupby(["order_id", "seller_id"])
        .agg(
            items=("order_item_id", "size"),
            weight_kg=("weight_kg", "sum"),
            price=("price", "sum"),
            freight=("freight_value", "sum"),
        )
        .reset_index()
    )
    merged = (
        lines.merge(orders, on="order_id", how="inner")
        .merge(
            customers[
                [
                    "customer_id",
                    "customer_state",
                    "dest_region",
                    "geolocation_lat",
                    "geolocation_lng",
                ]
            ],
            on="customer_id",
            how="inner",
        )
        .merge(sellers[["seller_id", "seller_state"]], on="seller_id", how="inner")
    )
    dropped["unplaced_or_without_items"] = int(len(orders) - merged["order_id"].nunique())
    merged = merged.sort_values(["order_purchase_timestamp", "order_id", "seller_id"])
    merged = merged.reset_index(drop=True)

    utc = {c: merged[c].dt.tz_localize("UTC") for c in _TS_COLUMNS}
    shipment_id = merged["order_id"].astype(str) + ":" + merged["seller_id"].astype(str)
    shipments = pd.DataFrame(
        {
            "event_timestamp": utc["order_purchase_timestamp"],
            "shipment_id": shipment_id,
            "order_id": merged["order_id"].astype(str),
            "node_id": merged["seller_id"].astype(str),
            "dest_region": merged["dest_region"],
            "dest_lat": merged["geolocation_lat"].astype(float),
            "dest_lon": merged["geolocation_lng"].astype(float),
            "carrier": "correios",
            "delivery_days": (
                utc["order_delivered_customer_date"] - utc["order_purchase_timestamp"]
            )
            / _DAY,
            "promised_days": np.clip(
                (utc["order_estimated_delivery_date"] - utc["order_purchase_timestamp"]) / _DAY,
                0.0,
                None,
            ),
        }
    )
    facts = pd.DataFrame(
        {
            "shipment_id": shipment_id,
            "purchased_at": utc["order_purchase_timestamp"],
            "approved_at": utc["order_approved_at"],
            "carrier_at": utc["order_delivered_carrier_date"],
            "delivered_at": utc["order_delivered_customer_date"],
            "estimated_at": utc["order_estimated_delivery_date"],
            "origin_state": merged["seller_state"].astype(str).str.upper(),
            "dest_state": merged["customer_state"].astype(str).str.upper(),
            "items": merged["items"].astype(int),
            "weight_kg": merged["weight_kg"].astype(float),
            "price": merged["price"].astype(float),
            "freight": merged["freight"].astype(float),
        }
    )
    used = sellers[sellers["seller_id"].isin(merged["seller_id"])]
    return OlistTables(
        nodes=_nodes(used, categories),
        shipments=validate("shipments", shipments),
        facts=ShipmentFacts.validate(facts),
        dropped=dropped,
    )
