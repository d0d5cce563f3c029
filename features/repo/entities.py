"""Feast entities; their join keys are the key columns of the feature tables and entity frames."""

from __future__ import annotations

from feast import Entity, ValueType

node = Entity(
    name="node",
    join_keys=["node_id"],
    value_type=ValueType.STRING,
    description="A fulfilment node (DC, ship-from store, 3PL or drop-ship partner).",
)
sku = Entity(
    name="sku",
    join_keys=["sku"],
    value_type=ValueType.STRING,
    description="A stock keeping unit.",
)
dest_region = Entity(
    name="dest_region",
    join_keys=["dest_region"],
    value_type=ValueType.STRING,
    description="A destination region (e.g. a state); with a node it forms a shipping lane.",
)


def all_entities() -> list[Entity]:
    return [node, sku, dest_region]
