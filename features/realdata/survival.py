"""Kaplan–Meier quantiles of delivery times whose slowest parcels have not arrived yet.

A level computed from recent *arrivals* lags a change in speed, and one computed from
recent *purchases* counting only their arrived parcels is biased fast (the slow ones are
still on the road). Kaplan–Meier treats a parcel still travelling as "at least this many
days", which removes that bias while using the newest purchases.
"""

from __future__ import annotations

import numpy as np


def kaplan_meier_quantile(durations: np.ndarray, observed: np.ndarray, q: float) -> float:
    """Smallest duration at which the estimated share still travelling falls to ``1 - q``.

    ``observed`` is False for a parcel not yet delivered (its duration is the time so
    far). NaN when too few parcels have been followed long enough to reach ``q``.
    """
    if not 0.0 < q < 1.0:
        raise ValueError("q must lie in (0, 1)")
    durations = np.asarray(durations, dtype=float)
    observed = np.asarray(observed, dtype=bool)
    if len(durations) == 0:
        return float("nan")
    # Ties: deliveries before censorings at the same time, the usual convention.
    order = np.lexsort((~observed, durations))
    t, e = durations[order], observed[order]
    at_risk = len(t) - np.arange(len(t))
    survival = np.cumprod(np.where(e, 1.0 - 1.0 / at_risk, 1.0))
    reached = np.flatnonzero(survival <= 1.0 - q + 1e-12)
    return float(t[reached[0]]) if len(reached) else float("nan")
