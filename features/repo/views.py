"""Batch feature views with explicit schemas; names and columns follow ``features.catalog``.

TTLs: every table has a row per entity per day (lanes: per day with shipments in the
trailing 28 days), so a few days is enough lookback and anything older is a gap that the
training frame fills with defaults instead of silently using stale values.
"""

from __future__ import annotations

from datetime import timedelta

from feast import FeatureView, Field, FileSource, PushSource
from feast.types import Float64, Int64, String

from features import catalog
from features.repo.entities import dest_region, node, sku

DAILY_TTL = timedelta(days=3)

INT_FEATURES = frozenset(
    {
        "node_type_code",
        "daily_capacity",
        "backlog",
        "orders_7d",
        "on_hand",
        "stockout_days_28d",
        "days_since_count",
        "available",
        "reserved",
        "rejections_7d",
        "lane_shipments_28d",
    }
)


def _fields(names: tuple[str, ...]) -> list[Field]:
    return [Field(name=n, dtype=Int64 if n in INT_FEATURES else Float64) for n in names]


def feature_views(sources: dict[str, FileSource | PushSource]) -> dict[str, FeatureView]:
    """View name → FeatureView over its file source."""
    node_key = [Field(name="node_id", dtype=String)]
    specs = {
        catalog.VIEW_NODE_PROFILE: (
            [node],
            node_key,
            catalog.NODE_PROFILE,
            "Node type, location, capacity.",
        ),
        catalog.VIEW_NODE_OPS: (
            [node],
            node_key,
            catalog.NODE_OPS,
            "Node load, lateness, rejections.",
        ),
        catalog.VIEW_NODE_SKU_INVENTORY: (
            [node, sku],
            [*node_key, Field(name="sku", dtype=String)],
            catalog.NODE_SKU_INVENTORY,
            "Stock position (recorded at close, live from the ledger during the day), count "
            "age, recent rejections and sales pace per node and SKU.",
        ),
        catalog.VIEW_LANE_PERFORMANCE: (
            [node, dest_region],
            [*node_key, Field(name="dest_region", dtype=String)],
            catalog.LANE_PERFORMANCE,
            "Delivered transit times per lane over the trailing 28 days.",
        ),
    }
    return {
        name: FeatureView(
            name=name,
            entities=entities,
            ttl=DAILY_TTL,
            schema=[*keys, *_fields(features)],
            source=sources[name],
            online=True,
            description=description,
        )
        for name, (entities, keys, features, description) in specs.items()
    }
