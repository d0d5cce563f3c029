"""The SKU catalogue. Velocity classes are hidden causes: only their sales show in the tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

PRODUCT_GROUPS = ("apparel", "electronics", "home", "beauty", "grocery-ambient")
#: share of SKUs per group (same order as PRODUCT_GROUPS)
GROUP_SHARE = (0.30, 0.15, 0.25, 0.15, 0.15)
#: (median kg, log-sd, min kg, max kg) and (median price, log-sd, min, max) per group
WEIGHT = {
    "apparel": (0.5, 0.5, 0.1, 2.0),
    "electronics": (1.2, 0.9, 0.1, 12.0),
    "home": (2.5, 0.8, 0.2, 20.0),
    "beauty": (0.25, 0.6, 0.03, 1.5),
    "grocery-ambient": (0.9, 0.6, 0.1, 6.0),
}
PRICE = {
    "apparel": (35.0, 0.5, 5.0, 250.0),
    "electronics": (90.0, 0.9, 10.0, 1500.0),
    "home": (40.0, 0.7, 5.0, 600.0),
    "beauty": (18.0, 0.5, 3.0, 120.0),
    "grocery-ambient": (6.0, 0.5, 1.0, 40.0),
}
#: velocity classes: name, share, walk-in units/day at an average store (low, high)
VELOCITY = (("fast", 0.15, 1.2, 3.5), ("medium", 0.35, 0.3, 1.0), ("slow", 0.50, 0.04, 0.25))
#: everyday goods sell faster than durables
GROUP_SPEED = {
    "apparel": 1.0,
    "electronics": 0.6,
    "home": 0.7,
    "beauty": 1.3,
    "grocery-ambient": 1.6,
}


@dataclass(frozen=True)
class Catalog:
    sku: npt.NDArray[np.str_]
    group: npt.NDArray[np.int64]
    weight_kg: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    #: hidden: 0 fast, 1 medium, 2 slow
    velocity_class: npt.NDArray[np.int64]
    #: hidden: walk-in units/day at a store of size 1
    base_rate: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.sku)

    def frame(self) -> pd.DataFrame:
        """The observable part, shaped like the canonical ``skus`` table."""
        return pd.DataFrame(
            {
                "sku": self.sku,
                "product_group": np.asarray(PRODUCT_GROUPS)[self.group],
                "weight_kg": self.weight_kg.round(3),
                "price": self.price.round(2),
            }
        )


def _bounded_lognormal(
    rng: np.random.Generator, spec: tuple[float, float, float, float], n: int
) -> npt.NDArray[np.float64]:
    median, sd, lo, hi = spec
    return np.clip(median * np.exp(rng.normal(0.0, sd, n)), lo, hi)


def make_catalog(rng: np.random.Generator, n_skus: int) -> Catalog:
    """Draw ``n_skus`` products; every group gets at least one so each node type has work."""
    group = rng.choice(len(PRODUCT_GROUPS), size=n_skus, p=GROUP_SHARE)
    group[: len(PRODUCT_GROUPS)] = np.arange(len(PRODUCT_GROUPS))
    group = np.sort(group)
    weight = np.empty(n_skus)
    price = np.empty(n_skus)
    speed = np.empty(n_skus)
    for g, name in enumerate(PRODUCT_GROUPS):
        m = group == g
        weight[m] = _bounded_lognormal(rng, WEIGHT[name], int(m.sum()))
        price[m] = _bounded_lognormal(rng, PRICE[name], int(m.sum()))
        speed[m] = GROUP_SPEED[name]
    vclass = rng.choice(len(VELOCITY), size=n_skus, p=[v[1] for v in VELOCITY])
    lo = np.array([v[2] for v in VELOCITY])[vclass]
    hi = np.array([v[3] for v in VELOCITY])[vclass]
    rate = rng.uniform(lo, hi) * speed
    return Catalog(
        sku=np.array([f"SKU-{i + 1:05d}" for i in range(n_skus)]),
        group=group.astype(np.int64),
        weight_kg=weight,
        price=price,
        velocity_class=vclass.astype(np.int64),
        base_rate=rate,
    )
