"""FreshRetailNet feature views over the tables of ``fresh_tables``.

Daily views expire after two days so a gap in the data yields missing values rather than
a stale day; the product profile never expires.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Float64, Int64

from features.realdata import entities
from features.realdata import fresh_tables as t

SERVICE = "fresh_stockout_v1"
_DAILY_TTL = timedelta(days=2)

#: Point-in-time target encodings (share of days at least half empty so far), by level.
TARGET_ENCODINGS = (
    "te_series_all",
    "te_sku_28d",
    "te_sku_all",
    "te_node_28d",
    "te_node_all",
    "te_node_cat2_28d",
    "te_node_cat2_all",
    "te_cat3_28d",
    "te_cat3_all",
)
#: Exponentially weighted stock-out shares (half-lives in days).
EWM_FEATURES = tuple(f"so_share_ewm{h}" for h in t.EWM_HALFLIVES)
SERIES_FEATURES = (
    "so_share",
    "so_share_all",
    "so_close",
    "so_last",
    "first_so_hour",
    "sales",
    "open_sales",
    "instock_hours",
    "sales_per_instock_hour",
    "discount",
    "activity",
    "so_share_3d",
    "so_share_7d",
    "so_share_28d",
    "so_days_7d",
    "sales_7d",
    "sales_ratio_7d",
    "demand_rate_7d",
    "so_streak",
    "so_trail_hours",
    "last_instock_hour",
    "restocks",
    "so_morning",
    "evening_sales",
    "profile_hours_empty_7d",
    "profile_morning_7d",
    "restocks_7d",
    # the shelf's rhythm and point-in-time target encodings (fresh_tables._rhythm_daily)
    "last_sale_hour",
    "first_sale_hour",
    "refill_hour",
    "empty_hour",
    "refill_hour_7d",
    "empty_hour_7d",
    "last_sale_hour_7d",
    "am_sales_share",
    "am_sales_vs_usual",
    "so_open_hours_14d",
    *TARGET_ENCODINGS,
    # fading memories, the shelf after closing, the usual discount (fresh_tables._series_daily)
    *EWM_FEATURES,
    "so_night_h22",
    "so_night_h23",
    "discount_7d",
)
#: Trading hours one by one (fresh_tables._hour_grid), in the same series view.
HOUR_FEATURES = t.hour_columns()
#: Features whose direction is known: more empty history never lowers tomorrow's risk.
MONOTONE = {
    name: 1
    for name in (
        "so_share",
        "so_share_3d",
        "so_share_7d",
        "so_share_28d",
        "so_days_7d",
        "so_streak",
        "so_trail_hours",
        "profile_hours_empty_7d",
        "so_open_hours_14d",
        *TARGET_ENCODINGS,
        *EWM_FEATURES,
        "sku_so_share_7d",
        "node_so_share_7d",
    )
}
NODE_FEATURES = ("node_so_share", "node_so_share_7d")
SKU_FEATURES = ("sku_so_share", "sku_so_share_7d")
PROFILE_FEATURES = ("category_1", "category_2", "category_3")


def _source(table_dir: Path, name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str((table_dir / f"{name}.parquet").resolve()),
        timestamp_field="event_timestamp",
    )


def feature_views(table_dir: Path) -> dict[str, FeatureView]:
    return {
        t.SERIES_DAILY: FeatureView(
            name=t.SERIES_DAILY,
            entities=[entities.node, entities.sku],
            ttl=_DAILY_TTL,
            schema=[Field(name=n, dtype=Float64) for n in (*SERIES_FEATURES, *HOUR_FEATURES)],
            source=_source(table_dir, t.SERIES_DAILY),
        ),
        t.NODE_DAILY: FeatureView(
            name=t.NODE_DAILY,
            entities=[entities.node],
            ttl=_DAILY_TTL,
            schema=[Field(name=n, dtype=Float64) for n in NODE_FEATURES],
            source=_source(table_dir, t.NODE_DAILY),
        ),
        t.SKU_DAILY: FeatureView(
            name=t.SKU_DAILY,
            entities=[entities.sku],
            ttl=_DAILY_TTL,
            schema=[Field(name=n, dtype=Float64) for n in SKU_FEATURES],
            source=_source(table_dir, t.SKU_DAILY),
        ),
        t.SKU_PROFILE: FeatureView(
            name=t.SKU_PROFILE,
            entities=[entities.sku],
            ttl=timedelta(0),
            schema=[Field(name=n, dtype=Int64) for n in PROFILE_FEATURES],
            source=_source(table_dir, t.SKU_PROFILE),
        ),
    }


def definitions(table_dir: Path) -> list[Any]:
    """Everything ``feast apply`` needs for a FreshRetailNet repository."""
    views = feature_views(table_dir)
    service = FeatureService(name=SERVICE, features=list(views.values()))
    return [*entities.ALL, *views.values(), service]
