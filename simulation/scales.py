"""Size knobs of the synthetic world, one preset per ``scale`` name.

Only sizes live here; behaviour constants stay next to the mechanics they tune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scale = Literal["small", "medium", "large"]


@dataclass(frozen=True)
class ScaleConfig:
    """How big a world is: node counts, catalogue size, horizon and online order volume."""

    n_dcs: int
    n_stores: int
    n_3pls: int
    n_skus: int
    days: int
    online_orders_per_day: float
    #: simulated before the first recorded day so counts go stale and backlogs settle
    burn_in_days: int = 35


SCALES: dict[str, ScaleConfig] = {
    "small": ScaleConfig(
        n_dcs=3, n_stores=25, n_3pls=1, n_skus=150, days=90, online_orders_per_day=300
    ),
    "medium": ScaleConfig(
        n_dcs=6, n_stores=120, n_3pls=2, n_skus=600, days=180, online_orders_per_day=1500
    ),
    "large": ScaleConfig(
        n_dcs=10, n_stores=400, n_3pls=4, n_skus=2000, days=365, online_orders_per_day=5000
    ),
}


def scale_config(scale: str) -> ScaleConfig:
    """Look up a preset; an unknown name is a caller error worth a clear message."""
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}") from None
