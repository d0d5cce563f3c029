"""Entities shared by the real-data feature views (join keys match the canonical tables)."""

from __future__ import annotations

from feast import Entity, ValueType

node = Entity(
    name="node", join_keys=["node_id"], value_type=ValueType.STRING, description="fulfilment node"
)
sku = Entity(name="sku", join_keys=["sku"], value_type=ValueType.STRING, description="product")
origin_state = Entity(
    name="origin_state",
    join_keys=["origin_state"],
    value_type=ValueType.STRING,
    description="state a shipment leaves from",
)
dest_state = Entity(
    name="dest_state",
    join_keys=["dest_state"],
    value_type=ValueType.STRING,
    description="state a shipment goes to",
)

ALL = (node, sku, origin_state, dest_state)
