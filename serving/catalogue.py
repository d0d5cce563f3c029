"""The network's catalogue and live shape: SKUs, nodes (catalogue attributes merged with the
ledger's operational state), capacity counts and the routing ``Network`` of an order's SKUs.

Loaded at start and refreshed off the request path; handlers read the current references.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from routing import (
    Closure,
    Network,
    Node,
    NodeCalendar,
    NodeSet,
    SkuStock,
    calendar_from_dict,
)
from serving.ledger import Ledger, NodeRecord
from serving.ledger.stock_cache import Row, StockCache

if TYPE_CHECKING:
    import pyarrow as pa

#: Destination regions whose lane features the snapshot holds.
US_REGIONS = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "DC",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "PR",
]


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A canonical table read with pyarrow alone: start-up reads a few small tables, and
    pandas (which ``pq.read_table``'s dataset path imports) costs seconds to import."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read(columns=columns)


@dataclass(frozen=True, slots=True)
class SkuRecord:
    sku: str
    product_group: str
    weight_kg: float
    price: float


class Catalogue:
    """SKUs and nodes from the canonical tables, node state from the ledger."""

    def __init__(self, raw_dir: Path, ledger: Ledger) -> None:
        self.raw_dir = raw_dir
        self.ledger = ledger
        self.skus: dict[str, SkuRecord] = {}
        self.nodes: tuple[Node, ...] = ()
        self._catalogue_nodes: dict[str, tuple[frozenset[str] | None, float]] = {}
        self.node_skus: list[tuple[str, str]] = []
        self._orders_today: dict[str, int] = {}
        self._orders_today_at = 0.0
        #: the capacity counts last applied and the nodes carrying them, for ``self.nodes``
        self._counted_base: tuple[Node, ...] | None = None
        self._counted: dict[str, int] = {}
        #: the counts mapping last applied (the same object until counts are read again)
        self._counted_from: dict[str, int] | None = None
        self._node_set = NodeSet()
        self._backlog: dict[str, int] = {}
        #: node ids routing knows (stock rows of other nodes are left out of networks)
        self._known: frozenset[str] = frozenset()
        self._stock = StockCache(ledger, self._stock_columns)

    def load(self) -> None:
        raw = self.raw_dir
        if not (raw / "nodes.parquet").exists():
            raise FileNotFoundError(
                f"no network under {raw}: run `routecast demo` (or `make run`) first"
            )
        nodes = read_table(raw / "nodes.parquet").to_pylist()
        skus = read_table(raw / "skus.parquet").to_pylist()
        self.skus = {
            str(r["sku"]).upper(): SkuRecord(
                str(r["sku"]), str(r["product_group"]), float(r["weight_kg"]), float(r["price"])
            )
            for r in skus
        }
        # Catalogue attributes the ledger does not hold; operational state comes from the ledger.
        self._catalogue_nodes = {
            str(r["node_id"]): (
                frozenset(g for g in str(r["ships_groups"]).split(",") if g) or None,
                float(r["handling_cost"]),
            )
            for r in nodes
        }
        inv = read_table(raw / "inventory_snapshots.parquet", ["node_id", "sku"])
        pairs = zip(
            (str(n) for n in inv.column("node_id").to_pylist()),
            (str(s) for s in inv.column("sku").to_pylist()),
            strict=True,
        )
        self.node_skus = list(dict.fromkeys(pairs))

    @property
    def node_ids(self) -> list[str]:
        return list(self._catalogue_nodes)

    def lanes(self) -> list[tuple[str, str]]:
        """(node, destination region) pairs whose lane features the snapshot reads."""
        return [(n, r) for n in self._catalogue_nodes for r in US_REGIONS]

    def reload_nodes(self) -> None:
        """Merge the ledger's operational node state (enabled, calendar, capacity, closures)
        with catalogue attributes (type, groups, handling cost) into routing nodes."""
        built = []
        for rec in self.ledger.nodes():
            groups, handling = self._catalogue_nodes.get(rec.node_id, (None, 0.0))
            built.append(
                Node(
                    node_id=rec.node_id,
                    node_type=rec.node_type,
                    lat=rec.lat,
                    lon=rec.lon,
                    enabled=rec.enabled,
                    priority=rec.priority,
                    ships_groups=groups,
                    handling_cost=handling,
                    timezone=rec.timezone,
                    daily_capacity=rec.daily_capacity or None,
                    calendar=node_calendar(rec),
                    backlog=self._backlog.get(rec.node_id, 0),
                )
            )
        self._set_nodes(tuple(sorted(built, key=lambda n: n.node_id)))
        known = frozenset(n.node_id for n in built)
        if known != self._known:
            self._known = known
            self._stock.forget()

    def set_backlog(self, backlog: Mapping[str, float]) -> None:
        """Parcels each node carries into today, not yet handed to a carrier (the node's
        operations report; the features' ``backlog``). Routing adds the wait to delivery days."""
        self._backlog = {n: max(round(v), 0) for n, v in backlog.items() if math.isfinite(v)}
        self._set_nodes(
            tuple(replace(n, backlog=self._backlog.get(n.node_id, 0)) for n in self.nodes)
        )

    def _set_nodes(self, nodes: tuple[Node, ...]) -> None:
        """Keep the current nodes object when nothing changed: the routing ``NodeSet`` built
        from it (and what routing derived from that) then lives on across refreshes."""
        if nodes != self.nodes:
            self.nodes = nodes

    def _capacity_counts(self) -> dict[str, int]:
        """Orders taken per capacity-limited node today, re-read at most every two seconds.

        Only a routing hint: the reservation counts again inside its transaction and a
        refusal there calls ``forget_capacity_counts`` before routing once more."""
        now = time.monotonic()
        if now - self._orders_today_at > 2.0:
            self._orders_today = self.ledger.orders_today()
            self._orders_today_at = now
        return self._orders_today

    def forget_capacity_counts(self) -> None:
        self._orders_today_at = 0.0

    def forget_stock(self, skus: Sequence[str]) -> None:
        """Read these SKUs' availability from the ledger on the next order (a reservation
        found less than the network said: route again on what the ledger holds now)."""
        self._stock.forget(skus)

    def network_for(self, skus: list[str]) -> Network:
        """Nodes plus live availability of just these SKUs: the same ``NodeSet`` and per-SKU
        columns for every order until a node, a count or that SKU's stock changes
        (``StockCache`` re-reads a SKU only when the ledger's movement log says it moved)."""
        nodes = self._with_counts(self._capacity_counts())
        stock = self._stock.get(skus)
        return Network.from_stock_columns(nodes, {s: st for s, st in stock.items() if st})

    def _stock_columns(self, sku: str, rows: Sequence[Row]) -> SkuStock | None:
        """One SKU's availability at the nodes routing knows (``None``: no node holds it)."""
        known = self._known
        kept = [(n, a) for n, _, a in rows if n in known]
        if not kept:
            return None
        available = [a for _, a in kept]
        return SkuStock([n for n, _ in kept], available, [a > 0 for a in available])

    def _with_counts(self, counts: dict[str, int]) -> NodeSet:
        """The nodes with today's capacity counts, as one ``NodeSet`` kept while no node and
        no count changes (routing keeps what it derives from the nodes on the set); a change
        copies only the nodes whose count changed."""
        if self._counted_base is not self.nodes:
            self._counted_base = self.nodes
            self._counted = {}
            self._counted_from = None
            self._node_set = NodeSet(self.nodes)
        if counts is self._counted_from:
            return self._node_set
        before, current = self._counted, self._node_set
        changed = {
            nid
            for nid in counts.keys() | before.keys()
            if counts.get(nid) != before.get(nid) and nid in current
        }
        if changed:
            self._node_set = NodeSet(
                replace(n, orders_today=counts.get(nid, 0)) if nid in changed else n
                for nid, n in current.items()
            )
        self._counted = dict(counts)
        self._counted_from = counts
        return self._node_set


def node_calendar(rec: NodeRecord) -> NodeCalendar | None:
    """The routing calendar of a ledger node: its stored calendar plus any closure the
    ledger set after a capacity rejection (closed for the rest of the local day)."""
    doc = rec.calendar[0] if rec.calendar else None
    cal = calendar_from_dict(doc) if doc else None
    if rec.closed_until is None or rec.closed_until <= datetime.now(UTC):
        return cal
    closure = Closure(datetime.now(UTC), rec.closed_until, "rejected for capacity")
    if cal is None:
        return NodeCalendar(closures=(closure,))
    return replace(cal, closures=(*cal.closures, closure))
