"""The day loop: one vectorised step per simulated day, emitting canonical rows.

Order of a day: supplier deliveries land, hidden shrink happens, morning walk-in
sales, online orders are routed (rejections re-routed), afternoon walk-in sales,
cycle counts, replenishment orders, shipments queue at nodes and go to carriers,
then the 23:00 UTC snapshot of the books (and, separately, of the truth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from routing.geo import haversine_km
from simulation.assortment import PRODUCT_GROUPS, Catalog, make_catalog
from simulation.carriers import CARRIERS, WEST, ParcelDraws, Parcels, deliver
from simulation.dispatch import REJECT_REASON, Dispatch, dispatch
from simulation.geography import sample_destinations, zip_table
from simulation.inventory import Inventory, initial_inventory
from simulation.network import DC, STORE, TPL, WorldNetwork, make_network
from simulation.orders import LINES_P, QTY_P, OrderLines, draw_orders
from simulation.scales import ScaleConfig

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: store walk-in traffic by weekday (Mon..Sun)
WALKIN_WEEKDAY = np.array([0.85, 0.85, 0.9, 0.95, 1.1, 1.3, 1.05])
#: share of a day's walk-in demand that comes before the online orders are picked
MORNING_SHARE = 0.45
#: staffed hand-over capacity by weekday, rows dc / store / 3pl
CAPACITY_WEEKDAY = np.array(
    [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.7],
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.7],
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.4],
    ]
)
#: nominal capacity over mean burn-in orders (low, high) by node type: some stores run tight
CAPACITY_HEADROOM = np.array([[1.2, 1.45], [1.05, 1.6], [1.2, 1.6]])
STAFF_SHORTFALL_PROB = 0.04
#: a node more than a day behind calls in overtime and temps
OVERTIME_FACTOR = 1.3
PROMO_START_PROB = 0.04
REPLAN_EVERY_DAYS = 7
SNAPSHOT_HOUR = 23
UNLIMITED = 10**9
SHIFT_START_HOUR, SHIFT_HOURS, MIN_PACK_HOURS = 8.0, 10.0, 0.5
#: capacity is sized on the last burn-in days, once replenishment has settled
CALIBRATION_DAYS = 14


@dataclass(frozen=True)
class ShipDay:
    """One day's shipments (one per order × node) and the nodes' queue state after it."""

    order: IntArray
    node: IntArray
    hour: FloatArray
    dest_lat: FloatArray
    dest_lon: FloatArray
    dest_state: npt.NDArray[np.str_]
    carrier: IntArray
    delivery_days: FloatArray
    promised_days: FloatArray
    weight_kg: FloatArray
    distance_km: FloatArray
    #: per node: shipments taken today, today's capacity, backlog carried into tomorrow
    orders: IntArray
    capacity: IntArray
    backlog: IntArray


@dataclass(frozen=True)
class DayTables:
    """Frames for one recorded day, keyed by table name (plus the hidden truth)."""

    day: date
    frames: dict[str, pd.DataFrame]
    #: the day's shipments as arrays (outcomes for backtest KPIs)
    ship: ShipDay | None = None


@dataclass(frozen=True)
class Morning:
    """A day up to its online orders (see ``Simulator.open_day``)."""

    t: int
    day: date
    weekday: int
    #: walk-in demand for the whole day and the part of it served before orders are picked
    wanted: IntArray
    morning: IntArray
    sold: IntArray
    lines: OrderLines


#: parcel randomness for shipments given (order index, node index); see carriers.ParcelDraws
DrawSource = Callable[[IntArray, IntArray], ParcelDraws]


def pack_schedule(
    position: IntArray, capacity_today: IntArray, nominal: IntArray, order_hour: FloatArray
) -> tuple[IntArray, FloatArray]:
    """When a queued parcel gets packed: FIFO behind the backlog, capacity spread over the shift.

    Returns whole days of delay and the UTC packing hour on that day, so a longer queue
    makes a parcel miss the pick-up cut-off gradually rather than all at once.
    """
    nominal = np.maximum(nominal, 1)
    today = position < capacity_today
    frac_today = position / np.maximum(capacity_today, 1)
    later = np.maximum(position - capacity_today, 0)
    days = np.where(today, 0, 1 + later // nominal).astype(np.int64)
    frac = np.where(today, frac_today, (later % nominal) / nominal)
    work_hour = SHIFT_START_HOUR + SHIFT_HOURS * frac
    ready = np.where(today, np.maximum(order_hour + MIN_PACK_HOURS, work_hour), work_hour)
    return days, np.asarray(ready, dtype=np.float64)


class Simulator:
    """Holds the world's state; :meth:`run` advances it day by day."""

    def __init__(self, cfg: ScaleConfig, seed: int) -> None:
        self.cfg = cfg
        cat_rng, net_rng, dyn_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
        )
        self.catalog: Catalog = make_catalog(cat_rng, cfg.n_skus)
        self.net: WorldNetwork = make_network(net_rng, cfg, self.catalog)
        self.rng = dyn_rng
        n = len(self.net)
        is_store = (self.net.node_type == STORE)[:, None]
        self.walkin_rate = np.where(
            self.net.stocked & is_store,
            self.net.size[:, None] * self.catalog.base_rate[None, :],
            0.0,
        )
        self.inv: Inventory = initial_inventory(
            self.rng, self.net, self.walkin_rate + self._online_prior()
        )
        self.backlog = np.zeros(n, dtype=np.int64)
        self.promo_left = np.zeros(len(PRODUCT_GROUPS), dtype=np.int64)
        self.promo_lift = np.ones(len(PRODUCT_GROUPS))
        self.calibrated = False
        self.last_ship: ShipDay | None = None
        self._burn_orders = np.zeros(n, dtype=np.int64)
        self._burn_days = 0
        self._serial = {"order": 0, "allocation": 0, "shipment": 0}
        self._pair_node, self._pair_sku = np.nonzero(self.net.stocked)
        zips = zip_table()
        # every customer ZIP to every node, once: routing then only gathers rows
        self._zip_dist = haversine_km(
            zips.lat[:, None], zips.lon[:, None], self.net.lat[None, :], self.net.lon[None, :]
        ).astype(np.float32)
        self._node_ids = self.net.node_id.astype(object)
        self._skus = self.catalog.sku.astype(object)
        self._states = np.array([c.state for c in self.net.cities])

    def _online_prior(self) -> FloatArray:
        """Expected online units per node × SKU before any history: who is nearest to whom."""
        net, cat = self.net, self.catalog
        probe = sample_destinations(self.rng, 4000)
        dist = haversine_km(
            probe.lat[:, None], probe.lon[:, None], net.lat[None, :], net.lon[None, :]
        )
        share = np.zeros((len(net), len(PRODUCT_GROUPS)))
        for g in range(len(PRODUCT_GROUPS)):
            ok = net.enabled & net.ships[:, g]
            d = np.where(ok[None, :], dist, np.inf)
            share[:, g] = np.bincount(np.argmin(d, axis=1), minlength=len(net)) / len(d)
        mean_units = float((np.arange(1, 4) @ LINES_P) * (np.arange(1, 4) @ QTY_P))
        popularity = cat.base_rate / cat.base_rate.sum()
        units_per_day = self.cfg.online_orders_per_day * mean_units
        return np.asarray(
            units_per_day * share[:, cat.group] * popularity[None, :], dtype=np.float64
        )

    def _promotions(self, rng: np.random.Generator) -> FloatArray:
        active = self.promo_left > 0
        self.promo_left[active] -= 1
        start = ~active & (rng.random(len(PRODUCT_GROUPS)) < PROMO_START_PROB)
        self.promo_left[start] = rng.integers(3, 8, int(start.sum()))
        self.promo_lift[start] = rng.uniform(1.5, 2.2, int(start.sum()))
        return np.where(self.promo_left > 0, self.promo_lift, 1.0)

    def capacity_today(self, weekday: int, rng: np.random.Generator) -> IntArray:
        """Orders each node can hand over today: staffing swings, shortfalls, overtime."""
        if not self.calibrated:
            return np.full(len(self.net), UNLIMITED, dtype=np.int64)
        net = self.net
        factor = CAPACITY_WEEKDAY[net.node_type, weekday] * rng.uniform(0.85, 1.1, len(net))
        factor = np.where(rng.random(len(net)) < STAFF_SHORTFALL_PROB, factor * 0.5, factor)
        factor = np.where(self.backlog > net.daily_capacity, factor * OVERTIME_FACTOR, factor)
        return np.rint(net.daily_capacity * factor).astype(np.int64)

    def _calibrate_capacity(self) -> None:
        """Staff each node for the traffic the old policy sent it during burn-in."""
        net = self.net
        mean = self._burn_orders / max(self._burn_days, 1)
        # nominal capacity is a weekday figure; weekends, daily swings and shortfalls eat into it
        effective = CAPACITY_WEEKDAY.mean(axis=1) * 0.975 * (1 - 0.5 * STAFF_SHORTFALL_PROB)
        lo, hi = CAPACITY_HEADROOM[net.node_type].T
        cap = np.ceil(mean / effective[net.node_type] * self.rng.uniform(lo, hi)).astype(np.int64)
        floor = np.where(net.node_type == STORE, 3, 20)
        cap = np.maximum(cap, floor)
        idle = ~net.enabled
        if idle.any():
            cap[idle] = int(np.median(cap[net.enabled & (net.node_type == STORE)]))
        net.daily_capacity = cap
        self.calibrated = True

    def run(self, days: list[date], burn_in: int) -> Iterator[DayTables]:
        """Simulate ``burn_in`` unrecorded days before ``days``, yielding recorded days."""
        first = np.datetime64(days[0], "D")
        warm = [(first - np.timedelta64(burn_in - i, "D")).astype(date) for i in range(burn_in)]
        for t, day in enumerate([*warm, *days]):
            if t == burn_in and not self.calibrated:
                self._calibrate_capacity()
            tables = self._step(t, day, record=t >= burn_in)
            if tables is not None:
                yield tables

    def _step(self, t: int, day: date, *, record: bool) -> DayTables | None:
        """One day of history: the retailer's old policy routes the orders (``dispatch``)."""
        m = self.open_day(t, day, self.rng)
        routed = dispatch(
            self.rng, m.lines, self.net, self.catalog, self.inv, self.line_km(m.lines)
        )
        return self.close_day(m, m.lines, routed, self.rng, record=record)

    def line_km(self, lines: OrderLines) -> npt.NDArray[np.float32]:
        """Great-circle km from every line's destination to every node (line × node)."""
        return self._zip_dist[lines.dest_zip]

    def open_day(self, t: int, day: date, rng: np.random.Generator) -> Morning:
        """The day up to its online orders: receipts, shrink, morning walk-ins, the order stream.

        Every draw here has a shape fixed by the network, so the same ``rng`` state gives the
        same shocks and orders whatever any policy did the days before.
        """
        net, cat, inv = self.net, self.catalog, self.inv
        weekday = day.weekday()
        lift = self._promotions(rng)
        inv.receive(rng, t, net.node_type)
        inv.shrink(rng, net, cat.velocity_class)
        wanted = rng.poisson(self.walkin_rate * WALKIN_WEEKDAY[weekday] * lift[cat.group][None, :])
        morning = rng.binomial(wanted, MORNING_SHARE)
        sold = inv.sell(morning)
        lines = draw_orders(rng, cat, self.cfg.online_orders_per_day, weekday, lift)
        return Morning(t, day, weekday, wanted, morning, sold, lines)

    def close_day(
        self,
        m: Morning,
        parts: OrderLines,
        routed: Dispatch,
        rng: np.random.Generator,
        *,
        record: bool,
        capacity: IntArray | None = None,
        draws: DrawSource | None = None,
    ) -> DayTables | None:
        """The rest of the day once online lines have homes: afternoon walk-ins, counts,
        replenishment, packing queues and carriers.

        ``parts`` are the allocated pieces of the day's lines (the lines themselves when the
        old policy routed whole lines); ``routed`` indexes into them.
        """
        inv, cat = self.inv, self.catalog
        sold = m.sold + inv.sell(m.wanted - m.morning)
        ok = routed.line_node >= 0
        online = np.zeros(inv.true.size, dtype=np.int64)
        np.add.at(online, routed.line_node[ok] * len(cat) + parts.sku[ok], parts.qty[ok])
        units = sold + online.reshape(inv.true.shape)
        inv.count(rng, self.net, routed.spot_counted)
        inv.learn(units)
        if m.t % REPLAN_EVERY_DAYS == 0:
            inv.plan()
        inv.replenish(m.t)

        if capacity is None:
            capacity = self.capacity_today(m.weekday, rng)
        ship = self._ship(m.day, parts, routed.line_node, routed.line_hour, rng, capacity, draws)
        self.last_ship = ship
        if not self.calibrated and m.t >= self.cfg.burn_in_days - CALIBRATION_DAYS:
            self._burn_orders += ship.orders
            self._burn_days += 1
        if not record:
            self._serial["order"] += m.lines.n_orders
            return None
        frames = self._frames(m.day, parts, routed, units, ship)
        self._serial["order"] += m.lines.n_orders
        return DayTables(m.day, frames, ship)

    def _ship(
        self,
        day: date,
        lines: OrderLines,
        line_node: IntArray,
        line_hour: FloatArray,
        rng: np.random.Generator,
        capacity: IntArray,
        draws: DrawSource | None,
    ) -> ShipDay:
        """Accepted lines of one order at one node form a shipment; queue it and hand it to a carrier."""
        net, cat = self.net, self.catalog
        ok = np.flatnonzero(line_node >= 0)
        key = lines.order[ok] * len(net) + line_node[ok]
        uniq, first_line, inverse = np.unique(key, return_index=True, return_inverse=True)
        n_ship = len(uniq)
        node = line_node[ok][first_line]
        hour = np.zeros(n_ship)
        np.maximum.at(hour, inverse, line_hour[ok])
        weight = np.bincount(
            inverse, weights=cat.weight_kg[lines.sku[ok]] * lines.qty[ok], minlength=n_ship
        ).astype(np.float64)
        src = ok[first_line]

        by_node = np.lexsort((hour, node))
        rank = np.empty(n_ship, dtype=np.int64)
        counts = np.bincount(node, minlength=len(net))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank[by_node] = np.arange(n_ship) - starts[node[by_node]]
        queue_days, ready_hour = pack_schedule(
            self.backlog[node] + rank,
            capacity[node],
            net.daily_capacity[node] if self.calibrated else np.full(n_ship, UNLIMITED),
            hour,
        )
        self.backlog = np.maximum(0, self.backlog + counts - capacity).astype(np.int64)

        dest_lat, dest_lon, dest_state = (
            lines.dest_lat[src],
            lines.dest_lon[src],
            lines.dest_state[src],
        )
        distance = haversine_km(net.lat[node], net.lon[node], dest_lat, dest_lon)
        west = np.isin(dest_state, list(WEST)) & np.isin(self._states[node], list(WEST))
        out = deliver(
            rng,
            Parcels(
                order_day=np.full(n_ship, np.datetime64(day, "D")),
                order_hour=hour,
                node_type=net.node_type[node],
                distance_km=distance,
                weight_kg=weight,
                intra_west=west,
                queue_days=queue_days,
                ready_hour=ready_hour,
                handover_lag=net.handover_lag[node],
            ),
            None if draws is None else draws(lines.order[src], node),
        )
        return ShipDay(
            order=lines.order[src],
            node=node,
            hour=hour,
            dest_lat=dest_lat,
            dest_lon=dest_lon,
            dest_state=dest_state,
            carrier=out.carrier,
            delivery_days=out.delivery_days,
            promised_days=out.promised_days,
            weight_kg=weight,
            distance_km=distance,
            orders=counts.astype(np.int64),
            capacity=capacity,
            backlog=self.backlog.copy(),
        )

    def _ids(self, kind: str, prefix: str, n: int, width: int) -> list[str]:
        start = self._serial[kind]
        self._serial[kind] += n
        return [f"{prefix}-{i:0{width}d}" for i in range(start + 1, start + n + 1)]

    def _frames(
        self,
        day: date,
        lines: OrderLines,
        routed: Dispatch,
        units: IntArray,
        ship: ShipDay,
    ) -> dict[str, pd.DataFrame]:
        inv = self.inv
        midnight = pd.Timestamp(day, tz="UTC")
        snap_ts = midnight + pd.Timedelta(hours=SNAPSHOT_HOUR)
        pn, ps = self._pair_node, self._pair_sku
        node_col, sku_col = self._node_ids[pn], self._skus[ps]

        def at(hours: FloatArray) -> pd.DatetimeIndex:
            seconds = np.floor(hours * 3600.0).astype("int64")
            return midnight + pd.to_timedelta(seconds, unit="s")

        order_base = self._serial["order"]
        order_ids = np.array(
            [f"ORD-{order_base + i + 1:09d}" for i in range(lines.n_orders)], dtype=object
        )
        a_sort = np.argsort(routed.alloc_hour, kind="stable")
        al = routed.alloc_line[a_sort]
        rejected = routed.alloc_rejected[a_sort]
        alloc = pd.DataFrame(
            {
                "event_timestamp": at(routed.alloc_hour[a_sort]),
                "allocation_id": self._ids("allocation", "ALC", len(al), 10),
                "order_id": order_ids[lines.order[al]],
                "node_id": self._node_ids[routed.alloc_node[a_sort]],
                "sku": self._skus[lines.sku[al]],
                "qty": lines.qty[al],
                "dest_region": lines.dest_state[al],
                "dest_lat": lines.dest_lat[al],
                "dest_lon": lines.dest_lon[al],
                "rejected": rejected,
                "reason": pd.Series(np.where(rejected, REJECT_REASON, ""), dtype=object).replace(
                    "", None
                ),
            }
        )
        s_sort = np.argsort(ship.hour, kind="stable")
        shipments = pd.DataFrame(
            {
                "event_timestamp": at(ship.hour[s_sort]),
                "shipment_id": self._ids("shipment", "SHP", len(s_sort), 10),
                "order_id": order_ids[ship.order[s_sort]],
                "node_id": self._node_ids[ship.node[s_sort]],
                "dest_region": ship.dest_state[s_sort],
                "dest_lat": ship.dest_lat[s_sort],
                "dest_lon": ship.dest_lon[s_sort],
                "carrier": np.asarray(CARRIERS)[ship.carrier[s_sort]],
                "delivery_days": np.round(ship.delivery_days[s_sort], 4),
                "promised_days": np.round(ship.promised_days[s_sort], 4),
            }
        )
        return {
            "inventory_snapshots": pd.DataFrame(
                {
                    "event_timestamp": snap_ts,
                    "node_id": node_col,
                    "sku": sku_col,
                    "on_hand": inv.recorded[pn, ps],
                    "days_since_count": inv.days_since_count[pn, ps],
                }
            ),
            "demand": pd.DataFrame(
                {
                    "event_timestamp": snap_ts,
                    "node_id": node_col,
                    "sku": sku_col,
                    "units": units[pn, ps],
                }
            ),
            "node_days": pd.DataFrame(
                {
                    "event_timestamp": snap_ts,
                    "node_id": self._node_ids,
                    "capacity": ship.capacity,
                    "orders": ship.orders,
                    "backlog": ship.backlog,
                }
            ),
            "allocations": alloc,
            "shipments": shipments,
            "true_inventory": pd.DataFrame(
                {
                    "event_timestamp": snap_ts,
                    "node_id": node_col,
                    "sku": sku_col,
                    "true_on_hand": inv.true[pn, ps],
                }
            ),
        }


__all__ = ["DC", "STORE", "TPL", "DayTables", "DrawSource", "Morning", "Simulator"]
