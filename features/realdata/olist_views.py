"""Olist feature views over the parquet tables of ``olist_tables``, plus on-demand distance.

No view expires (``ttl=0``): a seller's record stays informative between its sparse
orders, and every history table starts with a missing-value sentinel per key, which a
finite TTL would filter out again (see ``olist_tables._with_sentinels``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureView, Field, FileSource, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64

from features.realdata import entities
from features.realdata import olist_tables as t

SERVICE = "olist_delivery_v1"
DISTANCE = "olist_distance"
_HISTORY_TTL = timedelta(0)

#: Columns the caller supplies in the entity frame (known when the order is placed).
REQUEST_FEATURES = ("weekday", "hour", "items", "weight_kg", "price", "freight", "dest_state_code")


def _source(table_dir: Path, name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=str((table_dir / f"{name}.parquet").resolve()),
        timestamp_field="event_timestamp",
    )


def _floats(*names: str) -> list[Field]:
    return [Field(name=n, dtype=Float64) for n in names]


order_request = RequestSource(
    name="olist_order_request",
    schema=[Field(name="dest_lat", dtype=Float64), Field(name="dest_lon", dtype=Float64)],
)


def feature_views(table_dir: Path) -> dict[str, FeatureView]:
    return {
        t.NODE_PROFILE: FeatureView(
            name=t.NODE_PROFILE,
            entities=[entities.node],
            ttl=timedelta(0),
            schema=[*_floats("node_lat", "node_lon"), Field(name="origin_state_code", dtype=Int64)],
            source=_source(table_dir, t.NODE_PROFILE),
        ),
        t.NODE_HANDLING: FeatureView(
            name=t.NODE_HANDLING,
            entities=[entities.node],
            ttl=_HISTORY_TTL,
            schema=_floats(
                "node_handling_days_mean", "node_handling_days_recent", "node_handovers"
            ),
            source=_source(table_dir, t.NODE_HANDLING),
        ),
        t.NODE_DELIVERY: FeatureView(
            name=t.NODE_DELIVERY,
            entities=[entities.node],
            ttl=_HISTORY_TTL,
            schema=_floats(
                "node_delivery_days_p50",
                "node_carrier_days_mean",
                "node_late_rate",
                "node_deliveries",
            ),
            source=_source(table_dir, t.NODE_DELIVERY),
        ),
        t.LANE_DELIVERY: FeatureView(
            name=t.LANE_DELIVERY,
            entities=[entities.origin_state, entities.dest_state],
            ttl=_HISTORY_TTL,
            schema=_floats("lane_days_p50", "lane_days_p90", "lane_deliveries"),
            source=_source(table_dir, t.LANE_DELIVERY),
        ),
        t.DEST_RECENT: FeatureView(
            name=t.DEST_RECENT,
            entities=[entities.dest_state],
            ttl=_HISTORY_TTL,
            schema=_floats("dest_days_p50_30d", "dest_carrier_days_p50_30d", "dest_deliveries_30d"),
            source=_source(table_dir, t.DEST_RECENT),
        ),
        t.NETWORK_RECENT: FeatureView(
            name=t.NETWORK_RECENT,
            entities=[],
            ttl=_HISTORY_TTL,
            schema=_floats(
                "net_days_p50_14d",
                "net_days_p90_14d",
                "net_carrier_days_p50_14d",
                "net_late_rate_14d",
            ),
            source=_source(table_dir, t.NETWORK_RECENT),
        ),
        t.NETWORK_COHORT: FeatureView(
            name=t.NETWORK_COHORT,
            entities=[],
            ttl=_HISTORY_TTL,
            schema=_floats(
                "net_cohort_days_p50_28d", "net_cohort_days_p90_28d", "net_cohort_orders_28d"
            ),
            source=_source(table_dir, t.NETWORK_COHORT),
        ),
    }


def distance_view(profile: FeatureView) -> Any:
    """Great-circle km from the seller (profile view) to the order's destination (request)."""

    @on_demand_feature_view(  # type: ignore[misc]
        name=DISTANCE,
        sources=[profile, order_request],
        schema=[Field(name="distance_km", dtype=Float64)],
        mode="pandas",
    )
    def olist_distance(inputs: pd.DataFrame) -> pd.DataFrame:
        # Feast re-executes this body from its source text, so it imports what it uses.
        import pandas as pd

        from routing.geo import haversine_km

        km = haversine_km(
            inputs["node_lat"], inputs["node_lon"], inputs["dest_lat"], inputs["dest_lon"]
        )
        return pd.DataFrame({"distance_km": np.asarray(km, dtype=float)})

    return olist_distance


def definitions(table_dir: Path) -> list[Any]:
    """Everything ``feast apply`` needs for the Olist repository."""
    views = feature_views(table_dir)
    distance = distance_view(views[t.NODE_PROFILE])
    service = FeatureService(name=SERVICE, features=[*views.values(), distance])
    return [*entities.ALL, order_request, *views.values(), distance, service]
