"""Where a return goes: the nearest enabled node that accepts returns for every product group
in it, else the policy's returns centre. Pure; the answer says why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from routing.domain import Node
from routing.geo import haversine_km

NodeType = Literal["dc", "store", "3pl"]


class ReturnsPolicy(BaseModel):
    """Which nodes take returns back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node_types: list[NodeType] = Field(
        default_factory=lambda: list[NodeType](["dc", "store"]),
        description="node types that accept returns",
    )
    centre: str | None = Field(
        default=None, description="returns centre used when no nearby node accepts the return"
    )


@dataclass(frozen=True, slots=True)
class ReturnRoute:
    node_id: str
    why: str
    distance_km: float | None


def choose_return_node(
    nodes: Iterable[Node],
    groups: frozenset[str],
    lat: float | None,
    lon: float | None,
    policy: ReturnsPolicy,
) -> ReturnRoute | None:
    """The node a return is sent to (ties: node id), or ``None`` when nothing accepts it."""
    all_nodes = list(nodes)
    accepting = [
        n
        for n in all_nodes
        if n.enabled
        and n.node_type in policy.node_types
        and (n.ships_groups is None or groups <= n.ships_groups)
    ]
    if accepting and lat is not None and lon is not None:
        located = [n for n in accepting if n.lat is not None and n.lon is not None]
        if located:
            best = min(
                located,
                key=lambda n: (float(haversine_km(lat, lon, n.lat, n.lon)), n.node_id),  # type: ignore[arg-type]
            )
            km = float(haversine_km(lat, lon, best.lat, best.lon))  # type: ignore[arg-type]
            what = ", ".join(sorted(groups)) or "these products"
            return ReturnRoute(
                best.node_id,
                f"nearest enabled {best.node_type} accepting returns of {what} ({km:.0f} km)",
                km,
            )
    if policy.centre is not None and any(n.node_id == policy.centre for n in all_nodes):
        reason = "no nearby node accepts this return" if not accepting else "destination unknown"
        return ReturnRoute(policy.centre, f"returns centre ({reason})", None)
    return None
