"""FreshRetailNet-50K hourly parquet → an hourly availability table keyed like the canonical ones.

A store is a node (``node_id`` = ``s<store_id>``) and a product a SKU (``p<product_id>``).
The canonical tables hold daily books (on-hand, integral units); FreshRetailNet has no
on-hand but has what they lack, an hourly out-of-stock flag, so the adapter emits it as
its own contract in the same style (UTC, node/sku keys, strict coercion).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

REQUIRED_COLUMNS = (
    "city_id",
    "store_id",
    "first_category_id",
    "second_category_id",
    "third_category_id",
    "product_id",
    "dt",
    "hour",
    "hourly_sale",
    "hourly_stockout",
    "discount",
    "holiday_flag",
    "activity_flag",
    "precpt",
    "avg_temperature",
)


class HourlyAvailability(pa.DataFrameModel):
    """One row per node × SKU × hour: sales and whether the shelf was empty that hour."""

    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    city_id: Series[int]
    node_id: Series[str]
    sku: Series[str]
    day: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})
    hour: Series[int] = pa.Field(ge=0, le=23)
    sales: Series[float] = pa.Field(ge=0)
    stockout: Series[int] = pa.Field(isin=[0, 1])
    discount: Series[float] = pa.Field(ge=0, le=1)
    holiday: Series[int] = pa.Field(isin=[0, 1])
    activity: Series[int] = pa.Field(isin=[0, 1])
    precipitation: Series[float] = pa.Field(ge=0)
    temperature: Series[float]
    category_1: Series[int]
    category_2: Series[int]
    category_3: Series[int]

    class Config:
        strict = "filter"
        coerce = True

    @pa.dataframe_check
    def one_row_per_series_and_hour(cls, df: pd.DataFrame) -> pd.Series:  # type: ignore[misc]
        # Per row, so an import can name every duplicated hour instead of failing the file.
        return ~df.duplicated(["node_id", "sku", "event_timestamp"], keep=False)


@dataclass(frozen=True)
class FreshRetailTables:
    hourly: pd.DataFrame

    @property
    def nodes(self) -> list[str]:
        return sorted(self.hourly["node_id"].unique())


def load_freshretail(path: Path | str, *, nodes: list[str] | None = None) -> FreshRetailTables:
    """Read one FreshRetailNet hourly parquet (any city); optionally keep only ``nodes``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    raw = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path} lacks FreshRetailNet columns {missing}")
    day = pd.to_datetime(raw["dt"]).dt.tz_localize("UTC")
    frame = pd.DataFrame(
        {
            "event_timestamp": day + pd.to_timedelta(raw["hour"], unit="h"),
            "city_id": raw["city_id"],
            "node_id": "s" + raw["store_id"].astype(str),
            "sku": "p" + raw["product_id"].astype(str),
            "day": day,
            "hour": raw["hour"],
            "sales": raw["hourly_sale"].clip(lower=0.0),
            "stockout": raw["hourly_stockout"],
            "discount": raw["discount"],
            "holiday": raw["holiday_flag"],
            "activity": raw["activity_flag"],
            "precipitation": raw["precpt"].clip(lower=0.0),
            "temperature": raw["avg_temperature"],
            "category_1": raw["first_category_id"],
            "category_2": raw["second_category_id"],
            "category_3": raw["third_category_id"],
        }
    )
    if nodes is not None:
        frame = frame[frame["node_id"].isin(nodes)]
    frame = frame.sort_values(["node_id", "sku", "event_timestamp"]).reset_index(drop=True)
    return FreshRetailTables(hourly=HourlyAvailability.validate(frame))
