"""The world driver: the simulated world, one day at a time, for any decision-maker.

The world (``simulation.simulator.Simulator``: network, catalogue, hidden shelf truth, walk-in
sales, shrink, counts, replenishment, carriers, capacity and backlog) is kept apart from
whoever routes its orders. A day is three calls::

    orders = world.open_day()          # receipts, shrink, morning walk-ins, the day's orders
    for each allocation the decision-maker makes:
        answer = world.pick(line, node, qty, hour)   # the node picks from the *true* shelf
    outcome = world.close_day()        # afternoon sales, counts, replenishment, queues, carriers

Between ``open_day`` and the first pick the decision-maker reads the retailer's books through
``world.feed()`` (node×SKU records changed in the stores' systems since the last feed, the
rows an inventory integration would push) — never the shelf truth. ``pick`` answers like a
store does: accepted when the shelf holds the units, else rejected (and the store often
recounts that shelf, which changes the books). The backtest harness plays the decisions
through ``routing`` and the ledger; ``routecast operate`` plays them through the HTTP API.

Common random numbers: every draw that does not depend on decisions (promotions, receipts,
shrink, walk-in demand, orders, staffing, counts) comes from a generator seeded by
(seed, day) with shapes fixed by the network, and every draw that does (a parcel's carrier
and transit, a rejected line's reroute delay, a spot count) is keyed on what it belongs to
((day, order, node), (day, line, node), (day, node, SKU)). Two policies that make the same
choice get the same outcome; different outcomes come from different decisions only.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from routing.geo import haversine_km
from simulation.carriers import WEST, ParcelDraws, Parcels, deliver
from simulation.dispatch import REROUTE_MINUTES, SPOT_COUNT_PROB, Dispatch
from simulation.orders import OrderLines
from simulation.simulator import MIN_PACK_HOURS, DayTables, Morning, ShipDay, Simulator

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: stream tags so keyed draws of different purposes never coincide
_DAY_SHOCKS, _PARCEL, _REROUTE, _SPOT, _CAPACITY, _ACCURACY = 1, 2, 3, 4, 5, 6
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser (Steele et al. 2014): a bijective, well-mixed 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def keyed_uniform(seed: int, stream: int, *keys: npt.ArrayLike) -> FloatArray:
    """Uniforms in (0, 1) that depend only on (seed, stream, keys): counter-based randomness."""
    arrays = [np.asarray(k, dtype=np.int64).astype(np.uint64) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else ()
    with np.errstate(over="ignore"):
        h = np.full(shape, np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        h = _mix(h ^ (np.uint64(stream) * _GOLDEN))
        for a in arrays:
            h = _mix(h + _GOLDEN + a)
    return np.asarray(((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53)


@dataclass(frozen=True)
class DayOrders:
    """The day's online orders as the shop sees them (no hidden state).

    ``lines`` holds one row per order line (``lines.order`` indexes ``order_ids``); SKU,
    weight and group come from ``world.sku_ids`` / the catalogue.
    """

    t: int
    day: date
    order_ids: list[str]
    lines: OrderLines


@dataclass(frozen=True)
class PickAnswer:
    """A node's answer to one allocation."""

    accepted: bool
    #: UTC hour of the day when the line can be sent elsewhere (after a rejection)
    retry_hour: float
    #: the store recounted the shelf after rejecting: the books now say this many
    recounted: int | None = None


@dataclass(frozen=True)
class DayOutcome:
    """What the day produced: shipments with realised transit, and the canonical tables."""

    day: date
    ship: ShipDay
    tables: DayTables | None
    #: allocation attempts (one row per pick): line index, node, qty, rejected
    pick_line: IntArray
    pick_node: IntArray
    pick_qty: IntArray
    pick_rejected: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TruthAtDecision:
    """Hidden state at the moment the day's orders arrive: for the perfect-foresight bound
    only, never for a decision-maker."""

    #: node × SKU units physically on the shelf
    shelf: IntArray
    #: orders each node can hand over today, and the queue it carries in from yesterday
    capacity: IntArray
    backlog: IntArray


@dataclass
class _Picks:
    line: list[int] = field(default_factory=list)
    node: list[int] = field(default_factory=list)
    qty: list[int] = field(default_factory=list)
    hour: list[float] = field(default_factory=list)
    rejected: list[bool] = field(default_factory=list)
    spot: list[int] = field(default_factory=list)


class WorldDriver:
    """One copy of the world, advanced day by day by a decision-maker's allocations.

    ``inventory_accuracy`` (None = the world's own counting) reconciles that share of
    node×SKU records with the shelf every morning and evening: 1.0 means perfect records.
    """

    def __init__(
        self,
        sim: Simulator,
        *,
        seed: int,
        start: date,
        first_t: int,
        inventory_accuracy: float | None = None,
        record: bool = False,
    ) -> None:
        if inventory_accuracy is not None and not 0.0 <= inventory_accuracy <= 1.0:
            raise ValueError("inventory_accuracy must be within [0, 1]")
        self.sim = copy.deepcopy(sim)
        self.seed = seed
        self.record = record
        self.accuracy = inventory_accuracy
        self.day = start
        self.t = first_t
        net, cat = self.sim.net, self.sim.catalog
        self.node_ids: list[str] = [str(n) for n in net.node_id]
        self.sku_ids: list[str] = [str(s) for s in cat.sku]
        self.node_index = {n: i for i, n in enumerate(self.node_ids)}
        self.sku_index = {s: i for i, s in enumerate(self.sku_ids)}
        self._fed = self.sim.inv.recorded.copy()
        self._morning: Morning | None = None
        self._rng: np.random.Generator | None = None
        self._capacity: IntArray | None = None
        self._picks = _Picks()

    # -- the day -------------------------------------------------------------------------
    def open_day(self) -> DayOrders:
        if self._morning is not None:
            raise RuntimeError("close_day() the current day before opening the next")
        sim = self.sim
        self._rng = np.random.default_rng([self.seed, _DAY_SHOCKS, self.t])
        self._morning = sim.open_day(self.t, self.day, self._rng)
        cap_rng = np.random.default_rng([self.seed, _CAPACITY, self.t])
        self._capacity = sim.capacity_today(self._morning.weekday, cap_rng)
        self._reconcile(0)
        self._picks = _Picks()
        base = sim._serial["order"]
        ids = [f"ORD-{base + i + 1:09d}" for i in range(self._morning.lines.n_orders)]
        return DayOrders(self.t, self.day, ids, self._morning.lines)

    def feed(self) -> list[tuple[int, int, int]]:
        """(node, sku, recorded on-hand) for every record changed since the last feed."""
        rec = self.sim.inv.recorded
        node, sku = np.nonzero(rec != self._fed)
        self._fed = rec.copy()
        return [(int(n), int(s), int(rec[n, s])) for n, s in zip(node, sku, strict=True)]

    def backlog(self) -> IntArray:
        """Parcels each node carries into today, not yet handed to a carrier: what the nodes
        report every evening (the ``node_days`` backlog), visible to any decision-maker."""
        return self.sim.backlog.copy()

    def pick(self, line: int, node: int, qty: int, hour: float) -> PickAnswer:
        """The node picks ``qty`` of the line's SKU from its real shelf, or rejects."""
        m = self._require_day()
        inv = self.sim.inv
        sku = int(m.lines.sku[line])
        p = self._picks
        p.line.append(line)
        p.node.append(node)
        p.qty.append(qty)
        p.hour.append(hour)
        if inv.true[node, sku] >= qty:
            inv.true[node, sku] -= qty
            inv.recorded[node, sku] = max(int(inv.recorded[node, sku]) - qty, 0)
            p.rejected.append(False)
            return PickAnswer(True, hour)
        p.rejected.append(True)
        lo, hi = REROUTE_MINUTES
        u = keyed_uniform(self.seed, _REROUTE, self.t, line, node)
        retry = hour + float(lo + (hi - lo) * u) / 60.0
        recount = None
        if keyed_uniform(self.seed, _SPOT, self.t, node, sku) < SPOT_COUNT_PROB:
            inv.recorded[node, sku] = inv.true[node, sku]
            p.spot.append(node * len(self.sku_ids) + sku)
            recount = int(inv.true[node, sku])
        return PickAnswer(False, retry, recount)

    def close_day(self) -> DayOutcome:
        m = self._require_day()
        assert self._rng is not None and self._capacity is not None
        p = self._picks
        pl = np.asarray(p.line, dtype=np.int64)
        pn = np.asarray(p.node, dtype=np.int64)
        pq = np.asarray(p.qty, dtype=np.int64)
        ph = np.asarray(p.hour, dtype=np.float64)
        rej = np.asarray(p.rejected, dtype=bool)
        lines = m.lines
        parts = OrderLines(
            order=lines.order[pl],
            hour=ph,
            sku=lines.sku[pl],
            qty=pq,
            dest_zip=lines.dest_zip[pl],
            dest_state=lines.dest_state[pl],
            dest_lat=lines.dest_lat[pl],
            dest_lon=lines.dest_lon[pl],
            n_orders=lines.n_orders,
        )
        idx = np.arange(len(pl), dtype=np.int64)
        routed = Dispatch(
            alloc_line=idx,
            alloc_node=pn,
            alloc_hour=ph,
            alloc_rejected=rej,
            line_node=np.where(rej, -1, pn),
            line_hour=ph,
            spot_counted=np.unique(np.asarray(p.spot, dtype=np.int64)),
        )
        tables = self.sim.close_day(
            m,
            parts,
            routed,
            self._rng,
            record=self.record,
            capacity=self._capacity,
            draws=self._parcel_draws,
        )
        self._reconcile(1)
        ship = self.sim.last_ship
        assert ship is not None
        out = DayOutcome(self.day, ship, tables, pl, pn, pq, rej)
        self._morning = None
        self.t += 1
        self.day = self.day + timedelta(days=1)
        return out

    # -- hidden state, for the bound only --------------------------------------------------
    def truth(self) -> TruthAtDecision:
        """Shelf stock, today's hand-over capacity and yesterday's backlog, right now."""
        self._require_day()
        assert self._capacity is not None
        return TruthAtDecision(
            self.sim.inv.true.copy(), self._capacity.copy(), self.sim.backlog.copy()
        )

    def parcel_draws(self, order: IntArray, node: IntArray) -> ParcelDraws:
        """The carrier randomness a shipment of ``order`` from ``node`` meets today."""
        return self._parcel_draws(np.asarray(order), np.asarray(node))

    def candidates(self) -> tuple[IntArray, IntArray]:
        """(line, node) pairs that could serve today's lines: the node is enabled, ships the
        SKU's group and carries the SKU (whatever its stock)."""
        m = self._require_day()
        net, cat = self.sim.net, self.sim.catalog
        ok = (
            net.enabled[None, :]
            & net.ships[:, cat.group[m.lines.sku]].T
            & net.stocked[:, m.lines.sku].T
        )
        line, node = np.nonzero(ok)
        return line.astype(np.int64), node.astype(np.int64)

    def transit_days(self, line: IntArray, node: IntArray) -> FloatArray:
        """Realised days from order to delivery if ``node`` shipped ``line`` today with no
        queue ahead of it (the carrier draws are the ones that shipment would really get)."""
        m = self._require_day()
        net, cat = self.sim.net, self.sim.catalog
        lines = m.lines
        line, node = np.asarray(line, dtype=np.int64), np.asarray(node, dtype=np.int64)
        hour = lines.hour[line]
        km = haversine_km(net.lat[node], net.lon[node], lines.dest_lat[line], lines.dest_lon[line])
        west_nodes = np.isin(self.sim._states[node], list(WEST))
        out = deliver(
            np.random.default_rng(0),  # unused: every variate comes from the keyed draws
            Parcels(
                order_day=np.full(len(line), np.datetime64(m.day, "D")),
                order_hour=hour,
                node_type=net.node_type[node],
                distance_km=np.asarray(km, dtype=np.float64),
                weight_kg=cat.weight_kg[lines.sku[line]] * lines.qty[line],
                intra_west=np.isin(lines.dest_state[line], list(WEST)) & west_nodes,
                queue_days=np.zeros(len(line), dtype=np.int64),
                ready_hour=hour + MIN_PACK_HOURS,
                handover_lag=net.handover_lag[node],
            ),
            self._parcel_draws(lines.order[line], node),
        )
        return np.asarray(out.delivery_days, dtype=np.float64)

    # -- internals -------------------------------------------------------------------------
    def _require_day(self) -> Morning:
        if self._morning is None:
            raise RuntimeError("call open_day() first")
        return self._morning

    def _parcel_draws(self, order: IntArray, node: IntArray) -> ParcelDraws:
        u = [keyed_uniform(self.seed, _PARCEL * 16 + k, self.t, order, node) for k in range(8)]
        return ParcelDraws(
            u_carrier=u[0],
            u_light=u[1],
            u_west=u[2],
            u_slip=u[3],
            z_haul=np.asarray(ndtri(u[4])),
            u_exception=u[5],
            e_exception=-np.log(u[6]),
            u_arrival=u[7],
        )

    def _reconcile(self, phase: int) -> None:
        """Perfect (or partial) record accuracy: records of that share of pairs follow the shelf."""
        if self.accuracy is None:
            return
        inv = self.sim.inv
        if self.accuracy >= 1.0:
            inv.recorded = np.where(inv.stocked, inv.true, inv.recorded)
            return
        n, s = inv.true.shape
        u = keyed_uniform(
            self.seed, _ACCURACY, self.t * 2 + phase, np.arange(n)[:, None], np.arange(s)[None, :]
        )
        hit = inv.stocked & (u < self.accuracy)
        inv.recorded = np.where(hit, inv.true, inv.recorded)


def sim_time(day: date, hour: float) -> datetime:
    """Aware UTC datetime of an hour (fractional) on a simulated day."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour)
