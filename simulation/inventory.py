"""Shelf stock as it really is (``true``) and as the books say (``recorded``).

The gap between the two is the hidden cause of rejections: shrink and misplacement
lower true stock silently, replenishment is triggered by recorded stock (so phantom
stock freezes reordering) and only counts bring the books back to the truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from simulation.network import DC, STORE, TPL, WorldNetwork

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: supplier lead time in days, by node type (dc, store, 3pl)
LEAD_TIME = np.array([6, 3, 5])
REVIEW_DAYS = 7.0
SAFETY_Z = 1.65
#: daily chance of a shrink/misplacement event per stocked pair at a store of factor 1
SHRINK_BASE = 0.06
#: shrink exposure by velocity class (fast, medium, slow): fast movers are handled more
SHRINK_BY_VELOCITY = np.array([2.0, 1.0, 0.6])
RECEIVING_ERROR_PROB = 0.02
#: smoothing of the demand estimate used for replenishment planning
DEMAND_EWMA = 0.05


@dataclass
class Inventory:
    """Node × SKU state arrays; every method is one vectorised step of the day."""

    stocked: npt.NDArray[np.bool_]
    lead_time: IntArray
    true: IntArray
    recorded: IntArray
    days_since_count: IntArray
    reorder_point: IntArray
    order_up_to: IntArray
    demand_rate: FloatArray
    pipeline: IntArray = field(init=False)

    def __post_init__(self) -> None:
        horizon = int(self.lead_time.max()) + 1
        self.pipeline = np.zeros((horizon, *self.true.shape), dtype=np.int64)

    @property
    def on_order(self) -> IntArray:
        return np.asarray(self.pipeline.sum(axis=0), dtype=np.int64)

    def plan(self) -> None:
        """Reorder point / order-up-to from the current demand estimate (periodic re-plan)."""
        horizon = self.demand_rate * (self.lead_time[:, None] + 1)
        s = np.ceil(horizon + SAFETY_Z * np.sqrt(horizon))
        big_s = np.maximum(s + np.ceil(self.demand_rate * REVIEW_DAYS), 2)
        self.reorder_point = np.where(self.stocked, s, 0).astype(np.int64)
        self.order_up_to = np.where(self.stocked, big_s, 0).astype(np.int64)

    def receive(self, rng: np.random.Generator, day: int, node_type: IntArray) -> None:
        """Deliveries due today land on the shelf; stores sometimes miscount a receipt."""
        slot = day % len(self.pipeline)
        arriving = self.pipeline[slot].copy()
        self.pipeline[slot] = 0
        error = np.zeros_like(arriving)
        store_rows = node_type == STORE
        mis = (arriving[store_rows] > 0) & (
            rng.random(arriving[store_rows].shape) < RECEIVING_ERROR_PROB
        )
        error[store_rows] = np.where(mis, rng.choice([-2, -1, 1], size=mis.shape), 0)
        self.true += np.maximum(arriving + error, 0)
        self.recorded += arriving

    def shrink(self, rng: np.random.Generator, net: WorldNetwork, velocity_class: IntArray) -> None:
        """Theft, damage and misplacement: true stock falls, the books do not notice."""
        p = SHRINK_BASE * net.shrink_factor[:, None] * SHRINK_BY_VELOCITY[velocity_class][None, :]
        hit = self.stocked & (self.true > 0) & (rng.random(self.true.shape) < p)
        size = 1 + rng.poisson(0.6, self.true.shape)
        self.true -= np.where(hit, np.minimum(size, self.true), 0)

    def sell(self, wanted: IntArray) -> IntArray:
        """Walk-in sales: customers take what is physically there; the POS books it."""
        sold = np.minimum(wanted, self.true)
        self.true -= sold
        self.recorded = np.maximum(self.recorded - sold, 0)
        return sold

    def count(self, rng: np.random.Generator, net: WorldNetwork, spot_counted: IntArray) -> None:
        """End-of-day cycle counts (a random slice per node) set the books to the truth.

        ``spot_counted`` are flat keys already recounted after a rejection today.
        """
        p = 1.0 / net.count_interval
        counted = self.stocked & (rng.random(self.true.shape) < p[:, None])
        self.recorded = np.where(counted, self.true, self.recorded)
        counted.reshape(-1)[spot_counted] = True
        self.days_since_count = np.where(counted, 0, self.days_since_count + 1)

    def replenish(self, day: int) -> None:
        """(s, S) review on recorded position: phantom stock keeps an empty shelf empty."""
        position = self.recorded + self.on_order
        qty = np.where(
            self.stocked & (position <= self.reorder_point), self.order_up_to - position, 0
        )
        rows = np.arange(len(self.lead_time))
        slots = (day + self.lead_time) % len(self.pipeline)
        self.pipeline[slots, rows] += np.maximum(qty, 0)

    def learn(self, units: IntArray) -> None:
        """Update the demand estimate from what was sold or shipped today."""
        self.demand_rate = (1 - DEMAND_EWMA) * self.demand_rate + DEMAND_EWMA * units


def initial_inventory(
    rng: np.random.Generator, net: WorldNetwork, prior_rate: FloatArray
) -> Inventory:
    """Shelves start accurate, between reorder point and order-up-to; counts staggered."""
    n, s = net.stocked.shape
    lead = LEAD_TIME[net.node_type].astype(np.int64)
    inv = Inventory(
        stocked=net.stocked,
        lead_time=lead,
        true=np.zeros((n, s), dtype=np.int64),
        recorded=np.zeros((n, s), dtype=np.int64),
        days_since_count=(rng.random((n, s)) * net.count_interval[:, None]).astype(np.int64),
        reorder_point=np.zeros((n, s), dtype=np.int64),
        order_up_to=np.zeros((n, s), dtype=np.int64),
        demand_rate=np.where(net.stocked, prior_rate, 0.0),
    )
    inv.plan()
    start = rng.integers(inv.reorder_point, inv.order_up_to + 1)
    inv.true = np.where(net.stocked, start, 0).astype(np.int64)
    inv.recorded = inv.true.copy()
    return inv


__all__ = ["DC", "LEAD_TIME", "STORE", "TPL", "Inventory", "initial_inventory"]
