"""How much lateness a perfect delivery forecast would buy: the ``oracle`` analysis.

The ``predictive`` policy prices lateness from the delivery model's P50/P90 of every
candidate. The perfect-foresight bound knows each parcel's realised fate (its hand-over slip,
transit draw and carrier exception). Between the two sits a policy *without* foresight whose
forecast is as good as a forecast can be: it is told the world's own delivery law for every
candidate (each node's true hand-over slip chance, the carrier's cut-off, the weekday, the
carrier mix, the transit spread and the exception rate — ``simulation.carriers.deliver``), but
never the dice. Its lateness is the floor of any forecast the router could be given; what is
left between it and the bound is luck no forecast can buy, and what is left between
``predictive`` and it is the delivery model's share.

The oracle runs the ``predictive`` policy unchanged (same stockout model, same router, same
ledger) and only replaces each candidate's (P50, P90) by two numbers that make the router's
lognormal lateness (``routing.ratings.lateness``) give the law's exact P(late) at the promise
with the law's median. The law includes the carrier's cut-off, so the job runs without the
nodes' cut-off calendars (``cutoffs=False``) to count the wait once; the router still adds the
node's queue.

An analysis, not a policy to serve: ``python -m simulation.backtest.oracle --scale small
--seed 101 --days 4`` (a tuning world) prints ``predictive`` and ``oracle`` side by side.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

from routing.domain import PredictionArrays
from routing.geo import haversine_km
from routing.ratings import Z90
from simulation.carriers import (
    EXCEPTION_MEAN_DAYS,
    EXCEPTION_PROB,
    WEST,
    ParcelDraws,
    Parcels,
    deliver,
)
from simulation.simulator import MIN_PACK_HOURS

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Monte Carlo draws of the delivery law per candidate (the same draws for every candidate)
DRAWS = 512
_Q_CLIP = 1e-4
#: widest lognormal spread handed to the router (wider overflows its expectations)
_MAX_SIGMA = 1.0
_MIN_SIGMA = 0.02


@dataclass(frozen=True)
class Law:
    """The world's delivery law of one shipment from each of some nodes."""

    p_late: FloatArray
    median: FloatArray
    p90: FloatArray


def delivery_law(
    *,
    node_type: IntArray,
    handover_lag: FloatArray,
    distance_km: FloatArray,
    intra_west: npt.NDArray[np.bool_],
    weight_kg: float | FloatArray,
    order_day: np.datetime64,
    order_hour: float | FloatArray,
    promise_days: float,
    draws: int = DRAWS,
) -> Law:
    """P(delivered more than ``promise_days`` after the order), median and P90 of the days,
    for a parcel packed right away (no queue) at each node, from ``carriers.deliver``.
    ``weight_kg`` and ``order_hour`` are one value or one per node (a pair per row).

    Carrier, hand-over slip, line haul and arrival hour are sampled (``draws``, the same
    for every node); the carrier exception, a rare event that decides most late parcels
    of early-week orders, is integrated exactly: a parcel on time without it is late with
    probability ``EXCEPTION_PROB × exp(−slack / EXCEPTION_MEAN_DAYS)``."""
    n = len(node_type)
    rep = np.repeat(np.arange(n), draws)
    weight = np.broadcast_to(np.asarray(weight_kg, dtype=np.float64), (n,))
    hour = np.broadcast_to(np.asarray(order_hour, dtype=np.float64), (n,))
    d = ParcelDraws.sample(np.random.default_rng(0), draws)
    tiled = replace(
        ParcelDraws(*(np.tile(getattr(d, f), n) for f in d.__dataclass_fields__)),
        u_exception=np.ones(n * draws),  # no exception: its tail is added exactly below
    )
    out = deliver(
        np.random.default_rng(0),
        Parcels(
            order_day=np.full(n * draws, order_day),
            order_hour=hour[rep],
            node_type=node_type[rep],
            distance_km=distance_km[rep],
            weight_kg=weight[rep],
            intra_west=intra_west[rep],
            queue_days=np.zeros(n * draws, dtype=np.int64),
            ready_hour=hour[rep] + MIN_PACK_HOURS,
            handover_lag=handover_lag[rep],
        ),
        tiled,
    )
    days = out.delivery_days.reshape(n, draws)
    slack = promise_days - days
    late = np.where(
        slack < 0, 1.0, EXCEPTION_PROB * np.exp(-np.maximum(slack, 0.0) / EXCEPTION_MEAN_DAYS)
    )
    return Law(
        p_late=late.mean(axis=1),
        median=np.median(days, axis=1),
        p90=np.quantile(days, 0.9, axis=1),
    )


def encode(law: Law, promise_days: float) -> tuple[FloatArray, FloatArray]:
    """(P50, P90) whose lognormal (``routing.ratings.lateness``) gives the law's exact
    P(late) at the promise: through the law's median where a spread of at most
    ``_MAX_SIGMA`` does it, else with the law's own spread (P90 over median) and the median
    moved (a median at the promise, or a P(late) near one half far from it)."""
    p50 = np.maximum(law.median, 0.05)
    mu = np.log(p50)
    z = ndtri(np.clip(law.p_late, _Q_CLIP, 1 - _Q_CLIP))
    gap = mu - math.log(promise_days)
    fit = gap / np.where(z == 0.0, 1.0, z)
    ok = (gap * z > 0) & (np.abs(gap) > 1e-6) & (fit <= _MAX_SIGMA)
    own = np.maximum(np.log(np.maximum(law.p90, p50) / p50) / Z90, _MIN_SIGMA)
    sigma = np.where(ok, fit, own)
    mu = np.where(ok, mu, math.log(promise_days) + z * own)
    return np.exp(mu), np.exp(mu + Z90 * sigma)


def order_lateness(
    law: dict[tuple[str, str], float], allocations: list[dict[str, Any]]
) -> tuple[float, float]:
    """(floor, chosen) of one order from the law's P(late) of each (line, node) candidate:
    the largest over lines of the line's smallest P(late) (no plan can do better, since the
    order is late when any of its parcels is), and the P(late) of the plan ``allocations``
    (a parcel per node, late with its lines' largest P(late); parcels independent)."""
    best: dict[str, float] = {}
    for (line_id, _), p in law.items():
        best[line_id] = min(p, best.get(line_id, 1.0))
    parcel: dict[str, float] = {}
    for a in allocations:
        p = law.get((a["line_id"], a["node_id"]), 0.0)
        parcel[a["node_id"]] = max(p, parcel.get(a["node_id"], 0.0))
    chosen = 1.0 - float(np.prod([1.0 - p for p in parcel.values()]))
    return max(best.values(), default=0.0), chosen


@dataclass
class OracleDelivery:
    """``PolicyJob`` hooks: ``see`` (``world_hook``) keeps the morning's world, ``decide``
    (``decider``) is ``serving.decide.decide`` with the delivery quantiles of every
    candidate replaced by the world's law.

    For every order's first decision it also keeps, under the law: ``floor``, the largest
    over the order's lines of the smallest P(late) among that line's candidates (no plan
    without foresight can make the order's lateness less likely, whatever the cost or the
    capacity; queues only add to it), and ``chosen``, the P(late) of the plan it picked (one
    minus the chance every parcel arrives in time, parcels taken as independent)."""

    world: Any = None
    floor: list[float] = field(default_factory=list)
    chosen: list[float] = field(default_factory=list)
    _law: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)
    _seen: set[str] = field(default_factory=set, repr=False)

    def see(self, world: Any) -> None:
        self.world = world

    def decide(self, body: Any, runtime: Any, **kw: Any) -> dict[str, Any]:
        import serving.decide as sd

        self._law = {}
        with self._patched(sd):
            answer = sd.decide(body, runtime, explain=False, **kw)
        first = not kw.get("exclude") and body.order_id not in self._seen
        if first and self._law:
            self._seen.add(body.order_id)
            floor, chosen = order_lateness(self._law, answer["allocations"])
            self.floor.append(floor)
            self.chosen.append(chosen)
        return answer

    @contextmanager
    def _patched(self, sd: Any) -> Iterator[None]:
        orig = sd.predict

        def predict(order: Any, network: Any, runtime: Any, now: datetime, *a: Any) -> Any:
            preds, reasons, as_of = orig(order, network, runtime, now, *a)
            if preds is not None:
                preds = self._replace(preds, order, runtime, now)
            return preds, reasons, as_of

        sd.predict = predict
        try:
            yield
        finally:
            sd.predict = orig

    def _replace(
        self, preds: PredictionArrays, order: Any, runtime: Any, now: datetime
    ) -> PredictionArrays:
        w = self.world
        net = w.sim.net
        promise = float(runtime.policy.rules(None).promise_days)
        hour = now.hour + now.minute / 60.0 + now.second / 3600.0
        west_dest = order.dest_region in WEST
        weight = {ln.line_id: float(ln.weight_kg) * float(ln.qty) for ln in order.lines}
        out = PredictionArrays()
        for line_id, lp in preds.lines.items():
            idx = np.array([w.node_index[n] for n in lp.node_ids], dtype=np.int64)
            km = np.asarray(
                haversine_km(net.lat[idx], net.lon[idx], order.dest_lat, order.dest_lon),
                dtype=np.float64,
            )
            law = delivery_law(
                node_type=net.node_type[idx],
                handover_lag=net.handover_lag[idx],
                distance_km=km,
                intra_west=np.isin(w.sim._states[idx], list(WEST)) & west_dest,
                weight_kg=weight.get(line_id, 1.0),
                order_day=np.datetime64(now.date(), "D"),
                order_hour=hour,
                promise_days=promise,
            )
            p50, p90 = encode(law, promise)
            out.add(line_id, lp.node_ids, lp.p_stockout, p50, p90)
            for n, q in zip(lp.node_ids, law.p_late.tolist(), strict=True):
                self._law[(line_id, n)] = q
        return out


def lateness_floor(
    scale: str, seed: int, days: int, work_dir: Path, *, draws: int = 256
) -> dict[str, Any]:
    """The smallest share of orders late that a plan without foresight can expect, day by
    day: every order's ``order_lateness`` floor over the nodes that carry each line's SKU
    and hold it on the shelf that morning, with no queue, no capacity limit and no cost.
    The order stream is the backtest's (common random numbers: it does not depend on
    decisions); the world is advanced without routing any order."""
    import pickle

    from simulation.backtest.harness import BACKTEST_START, BacktestSpec, prepare
    from simulation.backtest.world import WorldDriver

    # any prepared world of (scale, seed) will do: the floor needs its simulator, no model
    found = sorted(work_dir.glob(f"{scale}-seed{seed}-hist*-{BACKTEST_START}-m*/prepared.json"))
    if found:
        home = found[-1].parent
        first_t = int(json.loads(found[-1].read_text())["first_t"])
    else:
        prepared = prepare(BacktestSpec(scale=scale, seed=seed, days=days, work_dir=work_dir))
        home, first_t = prepared.home, prepared.first_t
    with (home / "simulator.pkl").open("rb") as fh:
        sim = pickle.load(fh)
    world = WorldDriver(sim, seed=seed, start=BACKTEST_START, first_t=first_t)
    net, cat = world.sim.net, world.sim.catalog
    from routing import Policy

    promise = float(Policy.default().rules(None).promise_days)
    daily: list[dict[str, Any]] = []
    orders_by_day: list[int] = []
    floor_by_day: list[float] = []
    for _ in range(days):
        orders = world.open_day()
        lines = orders.lines
        line, node = world.candidates()
        shelf = world.truth().shelf
        keep = shelf[node, lines.sku[line]] >= lines.qty[line]
        line, node = line[keep], node[keep]
        km = haversine_km(net.lat[node], net.lon[node], lines.dest_lat[line], lines.dest_lon[line])
        west = np.isin(world.sim._states[node], list(WEST)) & np.isin(
            lines.dest_state[line], list(WEST)
        )
        p_late = np.ones(len(line))
        step = max(1, 2_000_000 // draws)
        for a in range(0, len(line), step):
            b = slice(a, a + step)
            p_late[b] = delivery_law(
                node_type=net.node_type[node[b]],
                handover_lag=net.handover_lag[node[b]],
                distance_km=np.asarray(km, dtype=np.float64)[b],
                intra_west=west[b],
                weight_kg=cat.weight_kg[lines.sku[line[b]]] * lines.qty[line[b]],
                order_day=np.datetime64(orders.day, "D"),
                order_hour=lines.hour[line[b]],
                promise_days=promise,
                draws=draws,
            ).p_late
        best = np.ones(len(lines.sku))
        np.minimum.at(best, line, p_late)
        best[np.bincount(line, minlength=len(best)) == 0] = 0.0  # no candidate: never ships
        floor = np.zeros(lines.n_orders)
        np.maximum.at(floor, lines.order, best)
        daily.append(
            {
                "day": orders.day.isoformat(),
                "weekday": orders.day.strftime("%a"),
                "orders": int(lines.n_orders),
                "p_late_floor": float(floor.mean()),
            }
        )
        orders_by_day.append(int(lines.n_orders))
        floor_by_day.append(float(floor.mean()))
        world.close_day()
    n = int(sum(orders_by_day))
    return {
        "orders": n,
        "p_late_floor": float(np.dot(orders_by_day, floor_by_day)) / max(n, 1),
        "daily": daily,
    }


def run(
    scale: str,
    seed: int,
    days: int,
    work_dir: Path,
    out_dir: Path,
    *,
    which: tuple[str, ...] = ("predictive", "oracle"),
    policy_file: Path | None = None,
) -> dict[str, Any]:
    """``predictive`` and ``oracle`` (or one of them) on the same prepared world and days, one
    process: the KPIs of each (``kpis.summarise``) with its daily series."""
    from simulation.backtest.harness import BacktestSpec, PolicyJob, prepare, run_policy
    from simulation.backtest.kpis import day_kpis, summarise

    spec = BacktestSpec(scale=scale, seed=seed, days=days, work_dir=work_dir, workers=1)
    prepared = prepare(spec)
    oracle = OracleDelivery()
    jobs = {
        "predictive": PolicyJob(
            prepared, "predictive", days, out_dir, progress=True, policy_file=policy_file
        ),
        "oracle": PolicyJob(
            prepared,
            "oracle",
            days,
            out_dir,
            progress=True,
            policy_file=policy_file,
            mode="predictive",
            decider=oracle.decide,
            world_hook=oracle.see,
            cutoffs=False,
        ),
    }
    out: dict[str, Any] = {}
    for p in which:
        days_run = run_policy(jobs[p]).days
        out[p] = {**summarise(days_run, seed=seed), "daily": [day_kpis(d) for d in days_run]}
        if p == "oracle":
            out[p]["law"] = {
                "orders": len(oracle.floor),
                "p_late_floor": float(np.mean(oracle.floor)) if oracle.floor else None,
                "p_late_chosen": float(np.mean(oracle.chosen)) if oracle.chosen else None,
            }
    return out


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--work-dir", type=Path, default=Path(".routecast/backtest"))
    ap.add_argument("--out", type=Path, default=Path(".routecast/backtest/oracle"))
    ap.add_argument("--which", default="predictive,oracle")
    ap.add_argument("--policy-file", type=Path, default=None)
    ap.add_argument("--floor", action="store_true", help="only the lateness floor, no policy")
    a = ap.parse_args(argv)
    if a.floor:
        json.dump(lateness_floor(a.scale, a.seed, a.days, a.work_dir), sys.stdout, indent=2)
        return
    which = tuple(a.which.split(","))
    result = run(a.scale, a.seed, a.days, a.work_dir, a.out, which=which, policy_file=a.policy_file)
    json.dump(result, sys.stdout, indent=2, default=float)


if __name__ == "__main__":
    main()
