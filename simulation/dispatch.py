"""The retailer's historical routing policy and how nodes answered it.

The policy only sees *recorded* stock: among nodes whose books cover a line it picks a
near one, with order-level randomness so lines of one order tend to stay together and
many nodes get traffic. The node then picks from *true* stock; when the shelf is short
it rejects (the stockout label) and the line is re-routed to the next choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from routing.domain import RejectReason
from simulation.assortment import Catalog
from simulation.inventory import Inventory
from simulation.network import WorldNetwork
from simulation.orders import OrderLines

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ROUTE_NOISE_SIGMA = 0.35
#: km added to every distance so a store next door does not always win
ROUTE_DISTANCE_FLOOR_KM = 80.0
#: score multiplier by node type (dc, store, 3pl): the old policy leaned on DCs
TYPE_BIAS = np.array([0.75, 1.0, 0.9])
MAX_ROUNDS = 6
#: after a rejection the store usually counts the shelf and fixes the books
SPOT_COUNT_PROB = 0.7
REROUTE_MINUTES = (10.0, 40.0)
REJECT_REASON = RejectReason.NOT_IN_STOCK.value


@dataclass(frozen=True)
class Dispatch:
    """Allocation rows in the order they were sent, and each line's final node."""

    alloc_line: IntArray
    alloc_node: IntArray
    alloc_hour: FloatArray
    alloc_rejected: BoolArray
    #: -1 where no node could take the line (lost online demand)
    line_node: IntArray
    line_hour: FloatArray
    #: flat node*n_skus + sku keys counted after a rejection
    spot_counted: IntArray


def grouped_cumsum(values: IntArray, keys: IntArray) -> IntArray:
    """Running sum of ``values`` restarting at each new key (keys must be sorted)."""
    if len(values) == 0:
        return values.copy()
    total = np.cumsum(values)
    starts = np.r_[True, keys[1:] != keys[:-1]]
    group = np.cumsum(starts) - 1
    base = (total - values)[starts][group]
    return np.asarray(total - base, dtype=np.int64)


def dispatch(
    rng: np.random.Generator,
    lines: OrderLines,
    net: WorldNetwork,
    catalog: Catalog,
    inv: Inventory,
    dist: npt.NDArray[np.floating],
) -> Dispatch:
    """Route every line of the day; mutates ``inv`` (picks, spot counts).

    ``dist`` is line × node great-circle km.
    """
    n_lines, n_nodes, n_skus = len(lines), len(net), len(catalog)
    noise = rng.lognormal(0.0, ROUTE_NOISE_SIGMA, (lines.n_orders, n_nodes))[lines.order]
    score = (dist + ROUTE_DISTANCE_FLOOR_KM) * noise * TYPE_BIAS[net.node_type][None, :]
    excluded = ~(
        net.enabled[None, :]
        & net.ships[:, catalog.group[lines.sku]].T
        & net.stocked[:, lines.sku].T
    )

    true_flat = inv.true.reshape(-1)
    rec_flat = inv.recorded.reshape(-1)
    hour = lines.hour.copy()
    pending = np.ones(n_lines, dtype=bool)
    line_node = np.full(n_lines, -1, dtype=np.int64)
    rows: list[tuple[IntArray, IntArray, FloatArray, BoolArray]] = []
    spot: list[IntArray] = []

    for _ in range(MAX_ROUNDS):
        idx = np.flatnonzero(pending)
        if idx.size == 0:
            break
        covers = lines.qty[idx][:, None] <= inv.recorded[:, lines.sku[idx]].T
        cand = covers & ~excluded[idx]
        has = cand.any(axis=1)
        pending[idx[~has]] = False
        idx, cand = idx[has], cand[has]
        if idx.size == 0:
            break
        choice = np.argmin(np.where(cand, score[idx], np.inf), axis=1)
        key = choice * n_skus + lines.sku[idx]
        order = np.lexsort((hour[idx], key))
        idx, choice, key = idx[order], choice[order], key[order]
        qty = lines.qty[idx]
        # the OMS reserves against the books in time order; lines the books cannot cover any more retry elsewhere
        booked = grouped_cumsum(qty, key) <= rec_flat[key]
        excluded[idx[~booked], choice[~booked]] = True
        idx, choice, key, qty = idx[booked], choice[booked], key[booked], qty[booked]
        accepted = grouped_cumsum(qty, key) <= true_flat[key]
        rows.append((idx, choice, hour[idx].copy(), ~accepted))

        np.subtract.at(true_flat, key[accepted], qty[accepted])
        np.subtract.at(rec_flat, key[accepted], qty[accepted])
        pending[idx[accepted]] = False
        line_node[idx[accepted]] = choice[accepted]

        rej = idx[~accepted]
        excluded[rej, choice[~accepted]] = True
        hour[rej] += rng.uniform(*REROUTE_MINUTES, rej.size) / 60.0
        rej_keys = np.unique(key[~accepted])
        fixed = rej_keys[rng.random(rej_keys.size) < SPOT_COUNT_PROB]
        rec_flat[fixed] = true_flat[fixed]
        spot.append(fixed)

    def cat(i: int, dtype: type) -> npt.NDArray[np.generic]:
        return np.concatenate([r[i] for r in rows]) if rows else np.zeros(0, dtype=dtype)

    return Dispatch(
        alloc_line=cat(0, np.int64).astype(np.int64),
        alloc_node=cat(1, np.int64).astype(np.int64),
        alloc_hour=cat(2, np.float64).astype(np.float64),
        alloc_rejected=cat(3, np.bool_).astype(bool),
        line_node=line_node,
        line_hour=hour,
        spot_counted=np.concatenate(spot) if spot else np.zeros(0, dtype=np.int64),
    )
