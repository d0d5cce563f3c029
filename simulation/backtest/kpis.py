"""KPIs of a backtest, per policy and per day, with bootstrap intervals over days.

Every figure comes from simulated outcomes (what nodes accepted, what carriers delivered),
never from what a policy expected. Ratios are summed over days before dividing, so a busy
day weighs more than a quiet one; the 95 % interval resamples whole days (days are the
independent unit: orders of one day share stock, queues and shocks).

CO₂ proxy: kg CO₂e = parcel tonnes × great-circle km × factor by carrier mode. Factors are
the UK DESNZ/DEFRA 2023 GHG conversion factors for freighting goods (approximate, per
tonne-km, well-to-wheel excluded): national parcel networks (UPS, FedEx, USPS) move
line-haul by HGV, ≈ 0.107 kg CO₂e/t·km (HGV, all diesel, average laden); the regional
carrier (OnTrac) runs vans, ≈ 0.58 kg CO₂e/t·km (average van up to 3.5 t, diesel). A proxy
to compare policies on one network, not a carbon account.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from simulation.carriers import CARRIERS

#: kg CO2e per tonne-km by carrier (see module docstring for the source)
CO2_KG_PER_TKM: dict[str, float] = {"UPS": 0.107, "FedEx": 0.107, "USPS": 0.107, "OnTrac": 0.58}
CO2_FACTORS = np.array([CO2_KG_PER_TKM[c] for c in CARRIERS])
BOOTSTRAP_SAMPLES = 2000

#: the KPIs of the JSON contract, in report order
KPI_NAMES = (
    "cost_per_order",
    "total_cost_per_order",
    "on_time_rate",
    "late_rate",
    "rejection_rate",
    "reroutes_per_100",
    "shipments_per_order",
    "unfilled_units",
    "unfilled_rate",
    "mean_km",
    "co2_kg_per_order",
    "decision_p50_ms",
    "decision_p99_ms",
)


@dataclass
class DayTally:
    """Sums of one simulated day for one policy (all KPIs derive from these)."""

    day: str
    orders: int = 0
    units: int = 0
    shipping_cost: float = 0.0
    handling_cost: float = 0.0
    reroute_cost: float = 0.0
    #: realised days past the promise × the policy's late cost (routing.ratings terms)
    late_cost: float = 0.0
    #: orders with at least one shipment, and those whose every parcel met the promise
    orders_shipped: int = 0
    orders_on_time: int = 0
    allocations: int = 0
    rejections: int = 0
    reroutes: int = 0
    shipments: int = 0
    unfilled_units: int = 0
    km: float = 0.0
    co2_kg: float = 0.0
    degraded: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def cost(self) -> float:
        return self.shipping_cost + self.handling_cost + self.reroute_cost


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _kpis_from_sums(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """KPI values from (possibly resampled) per-day sums; arrays broadcast over samples."""
    on_time = _ratio(s["orders_on_time"], s["orders_shipped"])
    return {
        "cost_per_order": _ratio(s["cost"], s["orders"]),
        "total_cost_per_order": _ratio(s["cost"] + s["late_cost"], s["orders"]),
        "on_time_rate": on_time,
        "late_rate": 1.0 - on_time,
        "rejection_rate": _ratio(s["rejections"], s["allocations"]),
        "reroutes_per_100": 100.0 * _ratio(s["reroutes"], s["orders"]),
        "shipments_per_order": _ratio(s["shipments"], s["orders_shipped"]),
        "unfilled_units": s["unfilled_units"].astype(float),
        "unfilled_rate": _ratio(s["unfilled_units"], s["units"]),
        "mean_km": _ratio(s["km"], s["shipments"]),
        "co2_kg_per_order": _ratio(s["co2_kg"], s["orders"]),
    }


def _sums(days: Sequence[DayTally]) -> dict[str, np.ndarray]:
    names = [f.name for f in fields(DayTally) if f.name not in ("day", "latencies_ms")]
    out = {n: np.array([getattr(d, n) for d in days], dtype=float) for n in names}
    out["cost"] = np.array([d.cost for d in days], dtype=float)
    return out


def day_kpis(day: DayTally) -> dict[str, Any]:
    """The KPIs of one day (the ``daily`` series of the report)."""
    values = {k: float(v[0]) for k, v in _kpis_from_sums(_sums([day])).items()}
    lat = np.asarray(day.latencies_ms)
    values["decision_p50_ms"] = float(np.percentile(lat, 50)) if lat.size else float("nan")
    values["decision_p99_ms"] = float(np.percentile(lat, 99)) if lat.size else float("nan")
    return {"day": day.day, "orders": day.orders, **values}


def summarise(days: Sequence[DayTally], *, seed: int = 0) -> dict[str, Any]:
    """Totals-based KPIs over all days, each with a bootstrap 95 % interval over days."""
    if not days:
        raise ValueError("no simulated days to summarise")
    sums = _sums(days)
    point = {
        k: float(v[0])
        for k, v in _kpis_from_sums({k: v.sum(keepdims=True) for k, v in sums.items()}).items()
    }
    lat = np.concatenate([np.asarray(d.latencies_ms, dtype=float) for d in days])
    point["decision_p50_ms"] = float(np.percentile(lat, 50)) if lat.size else float("nan")
    point["decision_p99_ms"] = float(np.percentile(lat, 99)) if lat.size else float("nan")

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(days), size=(BOOTSTRAP_SAMPLES, len(days)))
    boot = _kpis_from_sums({k: v[idx].sum(axis=1) for k, v in sums.items()})
    with warnings.catch_warnings():  # a KPI undefined on every resample stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = {
            k: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))]
            for k, v in boot.items()
        }
    day_p = [np.asarray(d.latencies_ms, dtype=float) for d in days]
    for q, name in ((50, "decision_p50_ms"), (99, "decision_p99_ms")):
        per_sample = (
            [
                np.percentile(np.concatenate([day_p[i] for i in row]), q)
                for row in idx[: min(200, len(idx))]
            ]
            if lat.size
            else [float("nan")]
        )
        ci[name] = [float(np.percentile(per_sample, 2.5)), float(np.percentile(per_sample, 97.5))]
    totals = {
        "orders": int(sums["orders"].sum()),
        "allocations": int(sums["allocations"].sum()),
        "rejections": int(sums["rejections"].sum()),
        "shipments": int(sums["shipments"].sum()),
        "degraded_decisions": int(sums["degraded"].sum()),
    }
    return {**{k: point[k] for k in KPI_NAMES}, "ci95": ci, "totals": totals}


def tally_to_dict(day: DayTally) -> dict[str, Any]:
    out = asdict(day)
    out.pop("latencies_ms")
    return out
