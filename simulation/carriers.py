"""Parcel carriers: who takes a shipment, when it is handed over, when it arrives, what was promised.

Delivery time is built from causes a model can partly observe: distance, the node's
queue (backlog and the day's capacity), node type (stores hand over later), the pick-up
weekday (no weekend line-haul), carrier speed and right-skewed exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CARRIERS = ("UPS", "FedEx", "USPS", "OnTrac")
#: multiplier on line-haul business days (lower is faster)
CARRIER_SPEED = np.array([1.0, 0.97, 1.12, 0.88])
#: OnTrac-style regional carrier only serves these states
WEST = frozenset({"CA", "OR", "WA", "NV", "AZ", "UT", "ID", "CO", "NM"})
#: orders placed after this UTC hour miss the day's pick-up (dc, store, 3pl)
CUTOFF_HOUR = np.array([17.0, 15.0, 16.0])
KM_PER_TRANSIT_DAY = 800.0
EXCEPTION_PROB = 0.05
EXCEPTION_MEAN_DAYS = 1.5
#: lognormal spread of line-haul days around the distance rule
HAUL_SIGMA = 0.25
PICKUP_WEEKMASK = "1111110"  # carriers collect Monday–Saturday
DELIVERY_WEEKMASK = "1111100"  # ground line-haul moves Monday–Friday

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
DayArray = npt.NDArray[np.datetime64]


@dataclass(frozen=True)
class Parcels:
    """Shipments of one day, as carriers see them."""

    order_day: DayArray
    order_hour: FloatArray
    node_type: IntArray
    distance_km: FloatArray
    weight_kg: FloatArray
    intra_west: npt.NDArray[np.bool_]
    #: whole days the node's queue holds the parcel before it is packed
    queue_days: IntArray
    #: UTC hour (on that day) the parcel is packed and ready for the carrier
    ready_hour: FloatArray
    #: hidden per-node chance of a one-day handover slip (stores are slow)
    handover_lag: FloatArray


@dataclass(frozen=True)
class Outcomes:
    carrier: IntArray
    delivery_days: FloatArray
    promised_days: FloatArray


@dataclass(frozen=True)
class ParcelDraws:
    """The random variates behind one parcel's carrier, hand-over slip and transit.

    Kept apart from the transit model so a backtest can key them on (day, order, node):
    every policy that ships the same order from the same node gets the same parcel fate.
    """

    u_carrier: FloatArray
    u_light: FloatArray
    u_west: FloatArray
    u_slip: FloatArray
    #: standard normal noise on line-haul days (lognormal sigma 0.25)
    z_haul: FloatArray
    u_exception: FloatArray
    #: exception delay before scaling by its mean (standard exponential)
    e_exception: FloatArray
    u_arrival: FloatArray

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int) -> ParcelDraws:
        """Draw from ``rng`` (the history generator's sequence)."""
        u_carrier, u_light, u_west, u_slip = (rng.random(n) for _ in range(4))
        z_haul = rng.standard_normal(n)
        u_exception = rng.random(n)
        e_exception = rng.standard_exponential(n)
        return cls(
            u_carrier, u_light, u_west, u_slip, z_haul, u_exception, e_exception, rng.random(n)
        )


def choose_carrier(
    draws: ParcelDraws, weight_kg: FloatArray, intra_west: npt.NDArray[np.bool_]
) -> IntArray:
    """Light parcels often go USPS, West-coast lanes often the regional carrier."""
    carrier = np.where(draws.u_carrier < 0.5, 0, 1)
    carrier = np.where((weight_kg < 1.0) & (draws.u_light < 0.6), 2, carrier)
    carrier = np.where(intra_west & (draws.u_west < 0.45), 3, carrier)
    return carrier.astype(np.int64)


def line_haul_days(distance_km: FloatArray) -> FloatArray:
    """Expected ground business days for a distance, before carrier speed and noise."""
    return 0.7 + distance_km / KM_PER_TRANSIT_DAY


def promised_business_days(distance_km: FloatArray) -> IntArray:
    """The carrier's published standard plus processing: deliberately pessimistic."""
    return (1 + np.ceil(line_haul_days(distance_km) * 1.1)).astype(np.int64)


def deliver(rng: np.random.Generator, p: Parcels, draws: ParcelDraws | None = None) -> Outcomes:
    """Carrier, actual delivery days and promised days for each parcel.

    ``draws`` fixes the randomness (backtests); without it the variates come from ``rng``.
    """
    d = draws if draws is not None else ParcelDraws.sample(rng, len(p.order_hour))
    carrier = choose_carrier(d, p.weight_kg, p.intra_west)
    late_cut = (p.ready_hour > CUTOFF_HOUR[p.node_type]).astype(np.int64)
    slip = (d.u_slip < p.handover_lag).astype(np.int64)
    handover = p.order_day + (p.queue_days + late_cut + slip).astype("timedelta64[D]")
    pickup = np.busday_offset(handover, 0, roll="forward", weekmask=PICKUP_WEEKMASK)
    haul = line_haul_days(p.distance_km) * CARRIER_SPEED[carrier] * np.exp(HAUL_SIGMA * d.z_haul)
    haul_days = np.maximum(1, np.rint(haul)).astype(np.int64)
    arrival = np.busday_offset(pickup, haul_days, roll="forward", weekmask=DELIVERY_WEEKMASK)
    exception = np.where(d.u_exception < EXCEPTION_PROB, EXCEPTION_MEAN_DAYS * d.e_exception, 0.0)
    arrival_hour = 9.0 + 11.0 * d.u_arrival
    calendar = (arrival - p.order_day).astype(np.int64).astype(float)
    delivery = np.maximum(0.0, calendar + (arrival_hour - p.order_hour) / 24.0 + exception)
    promise_day = np.busday_offset(
        p.order_day,
        promised_business_days(p.distance_km),
        roll="forward",
        weekmask=DELIVERY_WEEKMASK,
    )
    promised = (promise_day - p.order_day).astype(np.int64) + (20.0 - p.order_hour) / 24.0
    return Outcomes(carrier=carrier, delivery_days=delivery, promised_days=promised.astype(float))
