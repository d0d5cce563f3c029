"""routecast's pure decision core: fences, ratings, allocation, explanations, policy.

No I/O and no pandas/Feast/MLflow/FastAPI: the server and the CLI call these functions.
"""

from routing.calendar import Closure, NodeCalendar, calendar_from_dict
from routing.domain import (
    MODES,
    Channel,
    Mode,
    Network,
    Node,
    NodeSet,
    Order,
    OrderLine,
    Prediction,
    PredictionArrays,
    RejectReason,
    SkuStock,
    StockRow,
)
from routing.errors import (
    InvalidNetwork,
    InvalidOrder,
    InvalidPolicy,
    PredictionsRequired,
    RoutingError,
    UnknownMode,
)
from routing.fences import candidate_pairs
from routing.formats import network_from_dict, order_from_dict
from routing.plan import (
    Allocation,
    Explanation,
    LineRanking,
    Plan,
    RankEntry,
    Shipment,
    Unallocated,
    plan_to_dict,
)
from routing.policy import ChannelPolicy, GroupPolicy, Policy, policy_from_dict, policy_to_dict
from routing.route import reroute_order, route

__all__ = [
    "MODES",
    "Allocation",
    "Channel",
    "ChannelPolicy",
    "Closure",
    "Explanation",
    "GroupPolicy",
    "InvalidNetwork",
    "InvalidOrder",
    "InvalidPolicy",
    "LineRanking",
    "Mode",
    "Network",
    "Node",
    "NodeCalendar",
    "NodeSet",
    "Order",
    "OrderLine",
    "Plan",
    "Policy",
    "Prediction",
    "PredictionArrays",
    "PredictionsRequired",
    "RankEntry",
    "RejectReason",
    "RoutingError",
    "Shipment",
    "SkuStock",
    "StockRow",
    "Unallocated",
    "UnknownMode",
    "calendar_from_dict",
    "candidate_pairs",
    "network_from_dict",
    "order_from_dict",
    "plan_to_dict",
    "policy_from_dict",
    "policy_to_dict",
    "reroute_order",
    "route",
]
