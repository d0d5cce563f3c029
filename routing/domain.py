"""Domain types of the decision core: nodes, stock, orders and predictions.

Frozen, slotted dataclasses: cheap to build per request, safe to share between threads.
A ``Network`` is built once per stock refresh and reused across orders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import TypeVar, cast

import numpy as np

from routing.calendar import NodeCalendar

T = TypeVar("T")


class Mode(StrEnum):
    """How candidates are ranked: expected cost with predictions, or a classic rule."""

    PREDICTIVE = "predictive"
    COST = "cost"
    PRIORITY = "priority"
    DISTANCE = "distance"
    HIGH_STOCK = "high_stock"


MODES: tuple[Mode, ...] = tuple(Mode)


class RejectReason(StrEnum):
    """Why a node refused allocated lines; each reason teaches the ledger something else."""

    NOT_IN_STOCK = "not_in_stock"
    DAMAGED = "damaged"
    CAPACITY = "capacity"


class Channel(StrEnum):
    """Sales channels of the default vocabulary; policies map them to allowed node types."""

    WEB = "web"
    APP = "app"
    MARKETPLACE = "marketplace"
    POS = "pos"
    CALL_CENTRE = "call_centre"


NODE_TYPES = ("dc", "store", "3pl")


@dataclass(frozen=True, slots=True)
class Node:
    """A fulfilment node. ``ships_groups=None`` ships every product group."""

    node_id: str
    node_type: str
    lat: float | None
    lon: float | None
    enabled: bool = True
    priority: int = 0
    ships_groups: frozenset[str] | None = None
    handling_cost: float = 0.0
    timezone: str = "UTC"
    daily_capacity: int | None = None
    orders_today: int = 0
    calendar: NodeCalendar | None = None
    name: str = ""
    region: str | None = None
    #: parcels accepted on earlier days that the node has not handed to a carrier yet:
    #: they are packed before anything taken today
    backlog: int = 0

    @property
    def at_capacity(self) -> bool:
        return self.daily_capacity is not None and self.orders_today >= self.daily_capacity

    @property
    def load(self) -> float | None:
        """Parcels ahead of a new one (backlog + orders taken today) in days of capacity;
        ``None`` when the node has no capacity limit."""
        if not self.daily_capacity:
            return None
        return (self.backlog + self.orders_today) / self.daily_capacity


@dataclass(frozen=True, slots=True)
class StockRow:
    """What a node can promise for one SKU. ``in_stock=False`` rows are skipped like MSI does."""

    node_id: str
    sku: str
    available: float
    in_stock: bool = True


class SkuStock:
    """One SKU's stock at many nodes as read-only columns, node ids ascending: a stock cache
    keeps one per SKU and hands the same object to every network built from it (nothing here
    is copied per order, and a network never changes it)."""

    __slots__ = ("_at", "_checked", "_pos", "available", "in_stock", "node_ids")

    def __init__(
        self,
        node_ids: Sequence[str],
        available: Sequence[float] | np.ndarray,
        in_stock: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        """``in_stock=None``: every row is in stock (``StockRow``'s default). Rows are
        sorted by node id here when they do not come sorted."""
        ids = list(node_ids)
        avail = np.array(available, dtype=np.float64)
        stocked = np.ones(len(ids), dtype=bool) if in_stock is None else np.array(in_stock, bool)
        if not len(ids) == len(avail) == len(stocked) or avail.ndim != 1 or stocked.ndim != 1:
            raise ValueError("node ids, available and in_stock differ in length")
        if any(a >= b for a, b in pairwise(ids)):
            order = sorted(range(len(ids)), key=ids.__getitem__)
            ids = [ids[k] for k in order]
            avail, stocked = avail[order], stocked[order]
            for a, b in pairwise(ids):
                if a == b:
                    raise ValueError(f"stock for node {a!r} appears twice")
        avail.setflags(write=False)
        stocked.setflags(write=False)
        self.node_ids: tuple[str, ...] = tuple(ids)
        self.available = avail
        self.in_stock = stocked
        self._pos: dict[str, int] | None = None
        #: (node columns, node index of each row): ``routing.fences`` remembers it here
        self._at: tuple[object, np.ndarray] | None = None
        #: the last node set every node id was found in (checked once per node set)
        self._checked: NodeSet | None = None

    @property
    def pos(self) -> dict[str, int]:
        """Node id -> row, made on the first lookup by node."""
        if self._pos is None:
            self._pos = {n: k for k, n in enumerate(self.node_ids)}
        return self._pos

    def __len__(self) -> int:
        return len(self.node_ids)

    def rows(self, sku: str) -> tuple[StockRow, ...]:
        return tuple(
            StockRow(n, sku, a, s)
            for n, a, s in zip(
                self.node_ids, self.available.tolist(), self.in_stock.tolist(), strict=True
            )
        )


class NodeSet(dict[str, Node]):
    """Nodes by id, checked once; what a node-level rule derives from them (attribute
    columns) is kept on the set, so networks built over the same ``NodeSet`` share it.
    Treat it as frozen: build a new set when a node changes."""

    __slots__ = ("_derived",)

    def __init__(self, nodes: Iterable[Node] = ()) -> None:
        super().__init__()
        for n in nodes:
            if n.node_id in self:
                raise ValueError(f"node {n.node_id!r} appears twice")
            self[n.node_id] = n
        self._derived: dict[str, object] = {}

    def derived(self, key: str, make: Callable[[NodeSet], T]) -> T:
        """``make(self)``, computed once per set and ``key`` (a rule's name)."""
        got = self._derived.get(key)
        if got is None:
            got = self._derived[key] = make(self)
        return cast(T, got)


class Network:
    """Nodes plus stock by SKU (case-insensitive), built once and reused across orders.

    Stock is held per SKU as :class:`SkuStock` columns; ``StockRow`` objects are made only
    when someone asks for them (``stock_for``, ``row``)."""

    __slots__ = ("_names", "_rows", "_stock", "nodes")

    def __init__(self, nodes: Iterable[Node] | NodeSet, stock: Iterable[StockRow] = ()) -> None:
        self._set_nodes(nodes)
        by_sku: dict[str, list[StockRow]] = {}
        seen: set[tuple[str, str]] = set()
        by_id = self.nodes
        for row in stock:
            if row.node_id not in by_id:
                raise ValueError(f"stock row for unknown node {row.node_id!r} (sku {row.sku!r})")
            key = (row.node_id, row.sku.casefold())
            if key in seen:
                raise ValueError(f"stock for node {row.node_id!r} sku {row.sku!r} appears twice")
            seen.add(key)
            by_sku.setdefault(key[1], []).append(row)
        self._rows: dict[str, tuple[StockRow, ...]] = {}
        self._stock: dict[str, SkuStock] = {}
        self._names: dict[str, str] = {}
        for k, rows in by_sku.items():
            rows.sort(key=lambda r: r.node_id)
            self._rows[k] = tuple(rows)
            self._stock[k] = SkuStock(
                [r.node_id for r in rows], [r.available for r in rows], [r.in_stock for r in rows]
            )

    def _set_nodes(self, nodes: Iterable[Node] | NodeSet) -> None:
        self.nodes: NodeSet = nodes if isinstance(nodes, NodeSet) else NodeSet(nodes)

    @classmethod
    def from_stock_columns(
        cls, nodes: Iterable[Node] | NodeSet, stock: Mapping[str, SkuStock]
    ) -> Network:
        """A network over ``stock`` (SKU as the ledger spells it -> its shared columns)
        without a ``StockRow`` per pair: the columns are referenced, not copied; pass the
        same :class:`NodeSet` to reuse what was derived from the nodes. Raises
        ``ValueError`` like the constructor for a node it does not know or a SKU given twice
        in different case."""
        self = cls.__new__(cls)
        self._set_nodes(nodes)
        self._rows = {}
        self._stock = {}
        self._names = {}
        by_id = self.nodes
        for sku, st in stock.items():
            key = sku.casefold()
            if key in self._stock:
                raise ValueError(f"stock for sku {sku!r} appears twice")
            if st._checked is not by_id:
                unknown = [n for n in st.node_ids if n not in by_id]
                if unknown:
                    raise ValueError(f"stock row for unknown node {unknown[0]!r} (sku {sku!r})")
                st._checked = by_id
            self._stock[key] = st
            self._names[key] = sku
        return self

    def stock(self, sku: str) -> SkuStock | None:
        """The columns of ``sku`` (any case), or ``None`` when no node holds it."""
        return self._stock.get(sku.casefold())

    def stock_for(self, sku: str) -> Sequence[StockRow]:
        """Rows holding ``sku`` (any case), sorted by node id."""
        key = sku.casefold()
        rows = self._rows.get(key)
        if rows is None:
            st = self._stock.get(key)
            if st is None:
                return ()
            rows = self._rows[key] = st.rows(self._names[key])
        return rows

    def row(self, node_id: str, sku: str) -> StockRow | None:
        st = self._stock.get(sku.casefold())
        k = None if st is None else st.pos.get(node_id)
        return None if k is None else self.stock_for(sku)[k]

    def available(self, node_id: str, sku: str) -> float:
        st = self._stock.get(sku.casefold())
        k = None if st is None else st.pos.get(node_id)
        if st is None or k is None or not st.in_stock[k]:
            return 0.0
        return float(st.available[k])

    def __repr__(self) -> str:
        rows = sum(len(st) for st in self._stock.values())
        return f"Network({len(self.nodes)} nodes, {rows} stock rows)"


@dataclass(frozen=True, slots=True)
class OrderLine:
    line_id: str
    sku: str
    qty: float
    product_group: str | None = None
    weight_kg: float = 1.0
    unit_price: float = 0.0


@dataclass(frozen=True, slots=True)
class Order:
    """An order to route. ``excluded_nodes`` holds nodes that already rejected it (reroute)."""

    order_id: str
    channel: str
    dest_lat: float | None
    dest_lon: float | None
    lines: tuple[OrderLine, ...]
    dest_region: str | None = None
    pickup_node_id: str | None = None
    allow_partial: bool = False
    promise_days: float | None = None
    excluded_nodes: frozenset[str] = field(default_factory=frozenset)
    ship_complete: bool = False  # one shipment with every line, or none
    max_shipments: int | None = None  # this order's own cap, on top of the policy's

    def __post_init__(self) -> None:
        if self.max_shipments is not None and self.max_shipments < 1:
            raise ValueError(f"order {self.order_id!r}: max_shipments must be at least 1")
        seen: set[str] = set()
        for ln in self.lines:
            if ln.line_id in seen:
                raise ValueError(f"order {self.order_id!r}: line_id {ln.line_id!r} appears twice")
            if not ln.qty > 0:
                raise ValueError(f"order {self.order_id!r}: line {ln.line_id!r} qty must be > 0")
            seen.add(ln.line_id)

    def partial_ok(self, policy_allows: bool) -> bool:
        """Whether a plan may leave lines unserved; ``ship_complete`` never does."""
        return (self.allow_partial or policy_allows) and not self.ship_complete

    def shipment_cap(self, *policy_caps: int | None) -> int | None:
        """The tightest shipment cap of the policy's and this order's own."""
        own = (self.max_shipments, 1 if self.ship_complete else None)
        caps = [c for c in (*policy_caps, *own) if c is not None]
        return min(caps) if caps else None

    def preferences(self) -> tuple[str, ...]:
        """The order's own fulfilment preferences, as the explanation states them."""
        out = []
        if self.ship_complete:
            out.append("ship complete (one shipment or none)")
        if self.max_shipments is not None:
            out.append(f"at most {self.max_shipments} shipment(s)")
        if self.pickup_node_id is not None:
            out.append(f"pickup at {self.pickup_node_id}")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Prediction:
    """Model outputs for one (line, node): rejection risk and delivery-day quantiles."""

    p_stockout: float
    days_p50: float
    days_p90: float


class LinePredictions:
    """One line's predictions as arrays over its node ids (aligned, float64)."""

    __slots__ = ("_pos", "days_p50", "days_p90", "node_ids", "p_stockout")

    def __init__(
        self,
        node_ids: list[str],
        p_stockout: np.ndarray,
        days_p50: np.ndarray,
        days_p90: np.ndarray,
    ) -> None:
        if not len(node_ids) == len(p_stockout) == len(days_p50) == len(days_p90):
            raise ValueError("node ids and prediction arrays differ in length")
        self.node_ids = node_ids
        self._pos: dict[str, int] | None = None
        self.p_stockout = np.asarray(p_stockout, dtype=np.float64)
        self.days_p50 = np.asarray(days_p50, dtype=np.float64)
        self.days_p90 = np.asarray(days_p90, dtype=np.float64)

    @property
    def pos(self) -> dict[str, int]:
        """Node id -> index, made on the first lookup by node (routing reads the arrays
        whole when they hold exactly a line's eligible nodes)."""
        if self._pos is None:
            self._pos = {n: k for k, n in enumerate(self.node_ids)}
        return self._pos


class PredictionArrays(Mapping[tuple[str, str], Prediction]):
    """``(line_id, node_id) -> Prediction`` held as arrays per line: what a model scores in
    one batch, handed to ``route`` without an object per pair (``route`` rates the lines
    from the arrays; a ``Prediction`` is built only for a pair someone looks up)."""

    __slots__ = ("lines",)

    def __init__(self) -> None:
        self.lines: dict[str, LinePredictions] = {}

    def add(
        self,
        line_id: str,
        node_ids: list[str],
        p_stockout: np.ndarray,
        days_p50: np.ndarray,
        days_p90: np.ndarray,
    ) -> None:
        self.lines[line_id] = LinePredictions(node_ids, p_stockout, days_p50, days_p90)

    def __getitem__(self, key: tuple[str, str]) -> Prediction:
        line = self.lines.get(key[0])
        k = None if line is None else line.pos.get(key[1])
        if line is None or k is None:
            raise KeyError(key)
        return Prediction(
            float(line.p_stockout[k]), float(line.days_p50[k]), float(line.days_p90[k])
        )

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        line = self.lines.get(key[0])
        return line is not None and key[1] in line.pos

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for line_id, line in self.lines.items():
            for n in line.node_ids:
                yield (line_id, n)

    def __len__(self) -> int:
        return sum(len(line.node_ids) for line in self.lines.values())
