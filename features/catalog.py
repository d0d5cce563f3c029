"""The feature catalogue: names shared by the Feast repo, training and the serving snapshot.

Feature names are unique across views so a model's column list maps to one source each.
Entities: ``node_id``; (``node_id``, ``sku``); (``node_id``, ``dest_region``).
"""

from __future__ import annotations

NODE_PROFILE = ("node_type_code", "node_lat", "node_lon", "daily_capacity")
NODE_OPS = ("backlog", "utilisation_7d", "orders_7d", "late_ship_rate_28d", "rejection_rate_28d")
NODE_SKU_INVENTORY = (
    "on_hand",
    "sales_velocity_7d",
    "sales_velocity_28d",
    "days_of_cover",
    "stockout_days_28d",
    "days_since_count",
    "available",
    "reserved",
    "hours_since_count",
    "rejections_7d",
)
#: node×SKU features the inventory ledger moves during the day: pushed through the view's
#: PushSource as they change (``features.push``); the daily table holds their value at close.
LIVE_NODE_SKU = (
    "on_hand",
    "available",
    "reserved",
    "days_since_count",
    "hours_since_count",
    "rejections_7d",
)
LANE_PERFORMANCE = (
    "lane_transit_p50_28d",
    "lane_transit_p90_28d",
    "lane_late_rate_28d",
    "lane_shipments_28d",
)
#: on-demand: great-circle distance node → destination, from request ``dest_lat``/``dest_lon``.
DISTANCE = ("distance_km",)
#: request-time features, supplied by the caller (entity dataframe in training, order in serving).
REQUEST = ("qty", "weekday")

NODE_TYPE_CODES = {"dc": 0, "store": 1, "3pl": 2}

#: Feast feature view names.
VIEW_NODE_PROFILE = "node_profile"
VIEW_NODE_OPS = "node_ops"
VIEW_NODE_SKU_INVENTORY = "node_sku_inventory"
VIEW_LANE_PERFORMANCE = "lane_performance"
VIEW_DISTANCE = "node_distance"

#: One feature service per model.
SERVICE_STOCKOUT = "stockout_risk_v1"
SERVICE_DELIVERY = "delivery_days_v1"

#: Model inputs, in column order.
STOCKOUT_FEATURES = (
    "node_type_code",
    "on_hand",
    "sales_velocity_7d",
    "sales_velocity_28d",
    "days_of_cover",
    "stockout_days_28d",
    "days_since_count",
    "backlog",
    "utilisation_7d",
    "rejection_rate_28d",
    "qty",
)
DELIVERY_FEATURES = (
    "distance_km",
    "node_type_code",
    "backlog",
    "utilisation_7d",
    "late_ship_rate_28d",
    "lane_transit_p50_28d",
    "lane_transit_p90_28d",
    "lane_late_rate_28d",
    "lane_shipments_28d",
    "weekday",
)
#: Monotone constraints (+1 increasing, -1 decreasing) where the business knows the direction.
STOCKOUT_MONOTONE = {"on_hand": -1, "days_of_cover": -1, "qty": 1}
DELIVERY_MONOTONE = {"distance_km": 1, "backlog": 1}

#: Values used where the store has no row for an entity at that time (training frame and
#: serving snapshot alike). Unknown node/SKU inventory reads as empty and idle; an unknown lane
#: gets a neutral transit prior, and ``lane_shipments_28d == 0`` tells the model it is a prior.
FEATURE_DEFAULTS: dict[str, float] = {
    "node_type_code": -1.0,
    "node_lat": 0.0,
    "node_lon": 0.0,
    "daily_capacity": 0.0,
    "backlog": 0.0,
    "utilisation_7d": 0.0,
    "orders_7d": 0.0,
    "late_ship_rate_28d": 0.0,
    "rejection_rate_28d": 0.0,
    "on_hand": 0.0,
    "sales_velocity_7d": 0.0,
    "sales_velocity_28d": 0.0,
    "days_of_cover": 0.0,
    "stockout_days_28d": 0.0,
    "days_since_count": 0.0,
    "available": 0.0,
    "reserved": 0.0,
    "hours_since_count": 0.0,
    "rejections_7d": 0.0,
    "lane_transit_p50_28d": 3.0,
    "lane_transit_p90_28d": 5.0,
    "lane_late_rate_28d": 0.0,
    "lane_shipments_28d": 0.0,
    "distance_km": 1000.0,
}
