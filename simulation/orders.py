"""The online order stream of one day: when, where to, which SKUs, how many."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulation.assortment import Catalog
from simulation.geography import sample_destinations

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: online orders by weekday (Mon..Sun): Monday catch-up, quiet Saturday
ONLINE_WEEKDAY = np.array([1.15, 1.1, 1.05, 1.0, 0.95, 0.85, 0.9])
LINES_P = np.array([0.6, 0.3, 0.1])
QTY_P = np.array([0.82, 0.13, 0.05])
FIRST_ORDER_HOUR, LAST_ORDER_HOUR = 8.0, 18.0


@dataclass(frozen=True)
class OrderLines:
    """One row per order line; order-level fields are repeated per line."""

    order: IntArray
    hour: FloatArray
    sku: IntArray
    qty: IntArray
    #: index into geography.zip_table()
    dest_zip: IntArray
    dest_state: npt.NDArray[np.str_]
    dest_lat: FloatArray
    dest_lon: FloatArray
    n_orders: int

    def __len__(self) -> int:
        return len(self.order)


def draw_orders(
    rng: np.random.Generator,
    catalog: Catalog,
    mean_orders: float,
    weekday: int,
    group_lift: FloatArray,
) -> OrderLines:
    """Orders arrive through the working day; promotions pull their groups into baskets."""
    lift = float(np.mean(group_lift[catalog.group]))
    n = int(rng.poisson(mean_orders * ONLINE_WEEKDAY[weekday] * (1 + 0.5 * (lift - 1))))
    hours = np.sort(rng.uniform(FIRST_ORDER_HOUR, LAST_ORDER_HOUR, n))
    dest = sample_destinations(rng, n)
    lines = rng.choice(len(LINES_P), size=n, p=LINES_P) + 1
    order = np.repeat(np.arange(n), lines)
    popularity = catalog.base_rate * group_lift[catalog.group]
    sku = rng.choice(len(catalog), size=len(order), p=popularity / popularity.sum())
    qty = rng.choice(len(QTY_P), size=len(order), p=QTY_P) + 1
    return OrderLines(
        order=order.astype(np.int64),
        hour=hours[order],
        sku=sku.astype(np.int64),
        qty=qty.astype(np.int64),
        dest_zip=dest.zip_index[order],
        dest_state=dest.state[order],
        dest_lat=dest.lat[order],
        dest_lon=dest.lon[order],
        n_orders=n,
    )
