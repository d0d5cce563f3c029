"""Fulfilment nodes placed in real US cities, with hidden operating traits.

Observable attributes go to the canonical ``nodes`` table; traits such as store size,
counting discipline and shrink exposure only act through the events they cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.contracts.raw import NODE_TYPES
from routing.geo import haversine_km
from simulation.assortment import PRODUCT_GROUPS, Catalog
from simulation.geography import City, postal_code, us_cities
from simulation.scales import ScaleConfig

DC, STORE, TPL = (NODE_TYPES.index(t) for t in ("dc", "store", "3pl"))
#: share of a store's shipped groups it carries, by velocity class (fast, medium, slow)
STORE_STOCK_PROB = np.array([0.95, 0.8, 0.6])
TPL_GROUPS = ("apparel", "electronics", "home")

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class WorldNetwork:
    """Column arrays, one entry per node (index = position in ``node_id``)."""

    node_id: npt.NDArray[np.str_]
    node_type: IntArray
    name: list[str]
    cities: list[City]
    lat: FloatArray
    lon: FloatArray
    priority: IntArray
    enabled: BoolArray
    handling_cost: FloatArray
    #: node × product group: may ship online
    ships: BoolArray
    #: node × sku: carried in the node's assortment
    stocked: BoolArray
    #: set from burn-in traffic (orders per day a node can hand over)
    daily_capacity: IntArray
    # hidden traits
    size: FloatArray
    count_interval: FloatArray
    shrink_factor: FloatArray
    handover_lag: FloatArray

    def __len__(self) -> int:
        return len(self.node_id)

    def frame(self) -> pd.DataFrame:
        """The observable part, shaped like the canonical ``nodes`` table."""
        groups = np.asarray(PRODUCT_GROUPS)
        return pd.DataFrame(
            {
                "node_id": self.node_id,
                "node_type": np.asarray(NODE_TYPES)[self.node_type],
                "name": self.name,
                "city": [c.name for c in self.cities],
                "state": [c.state for c in self.cities],
                "postal_code": [postal_code(c) for c in self.cities],
                "lat": self.lat,
                "lon": self.lon,
                "timezone": [c.timezone for c in self.cities],
                "priority": self.priority,
                "enabled": self.enabled,
                "daily_capacity": self.daily_capacity,
                "handling_cost": self.handling_cost.round(2),
                "ships_groups": [",".join(groups[row]) for row in self.ships],
            }
        )


def _spread_hubs(rng: np.random.Generator, pool: list[City], k: int) -> list[City]:
    """Greedy far-apart picks among big cities, the way DC networks cover a country."""
    lat = np.array([c.lat for c in pool])
    lon = np.array([c.lon for c in pool])
    pop = np.array([c.population for c in pool], dtype=float)
    first = int(rng.choice(min(10, len(pool))))
    chosen = [first]
    nearest = haversine_km(lat[first], lon[first], lat, lon)
    for _ in range(k - 1):
        score = nearest * pop**0.25 * rng.uniform(0.7, 1.0, len(pool))
        score[chosen] = -1.0
        nxt = int(np.argmax(score))
        chosen.append(nxt)
        nearest = np.minimum(nearest, haversine_km(lat[nxt], lon[nxt], lat, lon))
    return [pool[i] for i in chosen]


def _weighted_without_replacement(
    rng: np.random.Generator, pool: list[City], k: int, weight: FloatArray
) -> list[City]:
    if k > len(pool):
        raise ValueError(f"asked for {k} locations but only {len(pool)} cities qualify")
    idx = rng.choice(len(pool), size=k, replace=False, p=weight / weight.sum())
    return [pool[i] for i in idx]


def make_network(rng: np.random.Generator, cfg: ScaleConfig, catalog: Catalog) -> WorldNetwork:
    """Place DCs, ship-from-stores and 3PLs; decide what each ships and carries."""
    cities = us_cities()
    big = [c for c in cities if c.population >= 150_000]
    mid = [c for c in cities if c.population >= 50_000]
    dcs = _spread_hubs(rng, big, cfg.n_dcs)
    store_w = np.array([c.population for c in mid], dtype=float) ** 0.8
    stores = _weighted_without_replacement(rng, mid, cfg.n_stores, store_w)
    tpl_pool = [c for c in mid if c.population <= 600_000 and -100.0 <= c.lon <= -80.0]
    tpls = _weighted_without_replacement(
        rng, tpl_pool, cfg.n_3pls, np.array([c.population for c in tpl_pool], dtype=float) ** 0.5
    )

    placed = dcs + stores + tpls
    ntype = np.array([DC] * len(dcs) + [STORE] * len(stores) + [TPL] * len(tpls), dtype=np.int64)
    n, n_groups = len(placed), len(PRODUCT_GROUPS)
    ids = [f"DC-{i + 1:02d}" for i in range(len(dcs))]
    ids += [f"ST-{i + 1:03d}" for i in range(len(stores))]
    ids += [f"3PL-{i + 1:02d}" for i in range(len(tpls))]
    names = [f"{c.name} DC" for c in dcs] + [f"{c.name} Store" for c in stores]
    names += [f"{c.name} 3PL" for c in tpls]

    is_store = ntype == STORE
    pop = np.array([c.population for c in placed], dtype=float)
    size = np.ones(n)
    size[is_store] = np.clip(
        (pop[is_store] / np.median(pop[is_store])) ** 0.3
        * rng.lognormal(0.0, 0.35, is_store.sum()),
        0.4,
        3.5,
    )

    ships = np.zeros((n, n_groups), dtype=bool)
    ships[ntype == DC] = True
    for i in np.flatnonzero(is_store):
        k = int(rng.choice([3, 4, 5], p=[0.2, 0.5, 0.3]))
        ships[i, rng.choice(n_groups, size=k, replace=False)] = True
    tpl_groups = [PRODUCT_GROUPS.index(g) for g in TPL_GROUPS]
    for i in np.flatnonzero(ntype == TPL):
        ships[i, rng.choice(tpl_groups, size=2, replace=False)] = True

    in_group = ships[:, catalog.group]
    p_stock = np.ones((n, len(catalog)))
    p_stock[is_store] = STORE_STOCK_PROB[catalog.velocity_class][None, :]
    p_stock[ntype == TPL] = 0.85
    stocked = in_group & (rng.random((n, len(catalog))) < p_stock)

    enabled = np.ones(n, dtype=bool)
    n_off = max(2, cfg.n_stores // 60)
    enabled[
        rng.choice(np.flatnonzero(is_store), size=min(n_off, int(is_store.sum())), replace=False)
    ] = False

    count_interval = np.where(ntype == DC, 7.0, 14.0)
    count_interval[is_store] = np.clip(
        rng.uniform(15.0, 60.0, is_store.sum()) * (1 + 0.3 * (size[is_store] - 1)), 10.0, 120.0
    )
    shrink = np.zeros(n)
    shrink[ntype == TPL] = 0.1
    shrink[is_store] = size[is_store] ** 0.8 * rng.lognormal(0.0, 0.3, is_store.sum())
    lag = np.where(ntype == DC, 0.05, 0.25)
    lag[is_store] = 0.5 * rng.uniform(0.6, 1.4, is_store.sum())
    handling = np.select([ntype == DC, ntype == TPL], [1.2, 2.0], 3.0) + rng.uniform(0.0, 0.8, n)

    return WorldNetwork(
        node_id=np.array(ids),
        node_type=ntype,
        name=names,
        cities=placed,
        lat=np.array([c.lat for c in placed]),
        lon=np.array([c.lon for c in placed]),
        priority=np.select([ntype == DC, ntype == TPL], [1, 2], 3).astype(np.int64),
        enabled=enabled,
        handling_cost=handling,
        ships=ships,
        stocked=stocked,
        daily_capacity=np.zeros(n, dtype=np.int64),
        size=size,
        count_interval=count_interval,
        shrink_factor=shrink,
        handover_lag=lag,
    )
