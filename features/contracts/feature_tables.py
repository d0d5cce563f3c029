"""Output contracts of the daily feature tables that back the Feast feature views.

A table that passes here can be materialised without surprises: UTC timestamps, the join
keys present, no missing values and values in their physical ranges.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from features import catalog


class _Timed(pa.DataFrameModel):
    event_timestamp: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs={"unit": "ns", "tz": "UTC"})

    class Config:
        strict = True
        coerce = True


class NodeProfileFeatures(_Timed):
    node_id: Series[str]
    node_type_code: Series[int] = pa.Field(isin=sorted(catalog.NODE_TYPE_CODES.values()))
    node_lat: Series[float] = pa.Field(ge=-90, le=90)
    node_lon: Series[float] = pa.Field(ge=-180, le=180)
    daily_capacity: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check
    @classmethod
    def one_row_per_node_and_day(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["node_id", "event_timestamp"]).any()


class NodeOpsFeatures(_Timed):
    node_id: Series[str]
    backlog: Series[int] = pa.Field(ge=0)
    utilisation_7d: Series[float] = pa.Field(ge=0)
    orders_7d: Series[int] = pa.Field(ge=0)
    late_ship_rate_28d: Series[float] = pa.Field(ge=0, le=1)
    rejection_rate_28d: Series[float] = pa.Field(ge=0, le=1)

    @pa.dataframe_check
    @classmethod
    def one_row_per_node_and_day(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["node_id", "event_timestamp"]).any()


class NodeSkuInventoryFeatures(_Timed):
    node_id: Series[str]
    sku: Series[str]
    on_hand: Series[int] = pa.Field(ge=0)
    sales_velocity_7d: Series[float] = pa.Field(ge=0)
    sales_velocity_28d: Series[float] = pa.Field(ge=0)
    days_of_cover: Series[float] = pa.Field(ge=0)
    stockout_days_28d: Series[int] = pa.Field(ge=0, le=28)
    days_since_count: Series[int] = pa.Field(ge=0)
    available: Series[int] = pa.Field(ge=0)
    reserved: Series[int] = pa.Field(ge=0)
    hours_since_count: Series[float] = pa.Field(ge=0)
    rejections_7d: Series[int] = pa.Field(ge=0)

    @pa.dataframe_check
    @classmethod
    def available_is_on_hand_less_reserved(cls, df: pd.DataFrame) -> pd.Series:
        return df["available"] == df["on_hand"] - df["reserved"]

    @pa.dataframe_check
    @classmethod
    def one_row_per_pair_and_day(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["node_id", "sku", "event_timestamp"]).any()


class LanePerformanceFeatures(_Timed):
    node_id: Series[str]
    dest_region: Series[str]
    lane_transit_p50_28d: Series[float] = pa.Field(ge=0)
    lane_transit_p90_28d: Series[float] = pa.Field(ge=0)
    lane_late_rate_28d: Series[float] = pa.Field(ge=0, le=1)
    lane_shipments_28d: Series[int] = pa.Field(ge=0)  # 0: no shipment in the window, priors

    @pa.dataframe_check
    @classmethod
    def p90_not_below_p50(cls, df: pd.DataFrame) -> pd.Series:
        return df["lane_transit_p90_28d"] >= df["lane_transit_p50_28d"] - 1e-9

    @pa.dataframe_check
    @classmethod
    def one_row_per_lane_and_day(cls, df: pd.DataFrame) -> bool:
        return not df.duplicated(["node_id", "dest_region", "event_timestamp"]).any()


FEATURE_SCHEMAS: dict[str, type[pa.DataFrameModel]] = {
    catalog.VIEW_NODE_PROFILE: NodeProfileFeatures,
    catalog.VIEW_NODE_OPS: NodeOpsFeatures,
    catalog.VIEW_NODE_SKU_INVENTORY: NodeSkuInventoryFeatures,
    catalog.VIEW_LANE_PERFORMANCE: LanePerformanceFeatures,
}


def validate_features(view: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Validate and coerce one feature table; raises ``pandera.errors.SchemaError`` naming the column."""
    return FEATURE_SCHEMAS[view].validate(frame)
