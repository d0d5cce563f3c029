"""On-demand distance from a node to the order's destination, computed at request time.

The transformation calls ``routing.geo.haversine_km``, the same formula the request path
uses. Feast serialises the function by value, so it imports what it needs inside.
"""

from __future__ import annotations

import types

import pandas as pd
from feast import FeatureView, Field, OnDemandFeatureView, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64

from features import catalog

destination_request = RequestSource(
    name="destination",
    schema=[Field(name="dest_lat", dtype=Float64), Field(name="dest_lon", dtype=Float64)],
    description="Destination coordinates of the order being routed.",
)


def distance_km(inputs: pd.DataFrame) -> pd.DataFrame:
    """Great-circle km between ``node_lat/node_lon`` and ``dest_lat/dest_lon``, row by row."""
    import pandas as pd

    from routing.geo import haversine_km

    km = haversine_km(
        inputs["node_lat"].to_numpy(dtype=float),
        inputs["node_lon"].to_numpy(dtype=float),
        inputs["dest_lat"].to_numpy(dtype=float),
        inputs["dest_lon"].to_numpy(dtype=float),
    )
    return pd.DataFrame({"distance_km": km}, index=inputs.index)


def node_distance_view(views: dict[str, FeatureView]) -> OnDemandFeatureView:
    """The ``node_distance`` view over node_profile's coordinates and the destination request."""
    profile = views[catalog.VIEW_NODE_PROFILE]
    decorate = on_demand_feature_view(
        name=catalog.VIEW_DISTANCE,
        sources=[profile[["node_lat", "node_lon"]], destination_request],
        schema=[Field(name="distance_km", dtype=Float64)],
        mode="pandas",
        description="Great-circle distance node → destination in km.",
    )
    # Feast re-homes the function it decorates into ``__main__`` for serialisation, so hand
    # it a fresh copy each time and keep the module's own function (and its source) intact.
    udf = types.FunctionType(
        distance_km.__code__,
        distance_km.__globals__,
        distance_km.__name__,
        distance_km.__defaults__,
    )
    udf.__doc__ = distance_km.__doc__
    view: OnDemandFeatureView = decorate(udf)
    return view
