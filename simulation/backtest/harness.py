"""The backtest day loop: each policy plays the same simulated days through the real
decision path (``serving.decide`` → ``routing`` fences/ratings/allocation) and the real
inventory ledger (reserve, ship, reject, reroute excluding rejecting nodes, capacity).

Steps:

1. ``prepare``: simulate the history before the backtest period with the retailer's old
   policy, build feature tables, train and register the models in MLflow (the same
   functions ``routecast demo`` uses), and keep the simulator at the end of that history.
2. ``run_policy`` (one process per policy, in parallel): a fresh ledger seeded from the
   recorded books, a ``WorldDriver`` copy of the world, and for every day: feed the changed
   book records to the ledger, route every order with ``decide`` (predictive mode scores
   with the registered models on features computed point in time from the policy's own
   canonical tables up to the previous midnight), reserve, let nodes pick from the hidden
   shelf, reject/reroute through the ledger, ship, close the day; tally outcomes.
3. ``run_backtest``: the JSON report of every policy (``kpis.summarise``).
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from routing import Policy
from routing.ratings import rate_realised, shipment_cost
from simulation.backtest.kpis import DayTally, day_kpis, summarise
from simulation.backtest.world import DayOrders, DayOutcome, WorldDriver, sim_time
from simulation.scales import scale_config
from simulation.simulator import Simulator
from simulation.world import GENERATOR_VERSION, world_key, write_history

POLICIES = ("predictive", "cost", "distance", "priority", "high_stock")
#: first backtest day (a Monday); the history is the days before it
BACKTEST_START = date(2025, 3, 3)
#: history simulated before the backtest by scale: what the models are trained on
HISTORY_DAYS = {"small": 35, "medium": 56, "large": 56}
#: training rows per model, as in the embedded demo
TRAIN_MAX_ROWS = 40_000
#: history kept for point-in-time features: the 28-day windows plus late deliveries
FEATURE_KEEP_DAYS = 60
FEED_HOUR = 7.0
#: what a node that refused for capacity reports as its orders taken for the rest of the day
FULL = 10**9


@dataclass(frozen=True)
class BacktestSpec:
    scale: str = "small"
    seed: int = 11
    days: int = 7
    policies: tuple[str, ...] = POLICIES
    history_days: int | None = None
    inventory_accuracy: float | None = None
    workers: int = 2
    work_dir: Path = Path(".routecast/backtest")
    progress: bool = True
    #: routing policy YAML used by every policy (cost terms, promise); None = the default
    policy_file: Path | None = None

    @property
    def history(self) -> int:
        return self.history_days or HISTORY_DAYS[self.scale]


@dataclass(frozen=True)
class Prepared:
    """A trained world at the start of the backtest period, on disk."""

    home: Path
    start: date
    first_t: int
    seed: int
    scale: str
    history_days: int
    model_versions: dict[str, str]

    @property
    def raw_dir(self) -> Path:
        return self.home / "data" / "raw"

    @property
    def sim_path(self) -> Path:
        return self.home / "simulator.pkl"


def _say(msg: str, on: bool = True) -> None:
    if on:
        print(msg, file=sys.stderr, flush=True)


def _settings(home: Path, **extra: Any) -> Any:
    from serving.settings import Settings

    return Settings(home=home, **extra)


def prepare(spec: BacktestSpec) -> Prepared:
    """History, feature tables and registered models for (scale, seed); reused when on disk."""
    from features.compute import build_feature_tables
    from features.store import apply_definitions, open_feature_store
    from training.config import TrainingConfig
    from training.pipeline import train_all
    from training.registry import configure

    cfg = scale_config(spec.scale)
    n_hist = spec.history
    tag = (
        f"{spec.scale}-seed{spec.seed}-hist{n_hist}-v{GENERATOR_VERSION}-{BACKTEST_START}"
        f"-m{_model_code_digest()}"
    )
    home = (spec.work_dir / tag).resolve()
    done = home / "prepared.json"
    calendar = [BACKTEST_START - timedelta(days=n_hist - i) for i in range(n_hist)]
    if done.exists():
        meta = json.loads(done.read_text())
        found = Prepared(
            home, BACKTEST_START, meta["first_t"], spec.seed, spec.scale, n_hist, meta["models"]
        )
        if not _loads(found.sim_path):
            # the simulator is deterministic: replay the history (unrecorded) to rebuild it
            sim = Simulator(cfg, spec.seed)
            for _ in sim.run(calendar, cfg.burn_in_days):
                pass
            _dump(sim, found.sim_path)
        return found
    home.mkdir(parents=True, exist_ok=True)
    settings = _settings(home, scale=spec.scale, seed=spec.seed, feast_project=f"bt{spec.seed}")
    sim = Simulator(cfg, spec.seed)
    t0 = time.perf_counter()
    _say(
        f"backtest: simulating {n_hist} history days ({spec.scale}, seed {spec.seed})",
        spec.progress,
    )
    write_history(
        sim,
        calendar,
        cfg.burn_in_days,
        settings.data_dir,
        world_key(spec.scale, spec.seed, calendar[-1], n_hist),
        progress=spec.progress,
    )
    _say("backtest: feature tables", spec.progress)
    build_feature_tables(settings.raw_dir, settings.feature_dir, progress=spec.progress)
    store = open_feature_store(settings)
    apply_definitions(store, settings.feature_dir)
    _say("backtest: training and registering models on the history", spec.progress)
    client = configure(settings.tracking_uri, settings.artifact_dir)
    config = TrainingConfig.from_settings(settings, max_rows=TRAIN_MAX_ROWS)
    results = train_all(store, settings.raw_dir, client, config=config)
    models = {r.name: (r.version.version if r.version else "") for r in results}
    _dump(sim, home / "simulator.pkl")
    first_t = cfg.burn_in_days + n_hist
    done.write_text(
        json.dumps({"first_t": first_t, "models": models, "seconds": time.perf_counter() - t0})
    )
    return Prepared(home, BACKTEST_START, first_t, spec.seed, spec.scale, n_hist, models)


#: modules whose code defines a trained, registered model: a prepared world whose models
#: were fitted by other code is trained again instead of failing when they are unpickled
MODEL_CODE = ("training.models", "training.pipeline", "features.catalog", "features.compute")


def _model_code_digest() -> str:
    import hashlib
    import importlib

    h = hashlib.sha256()
    for name in MODEL_CODE:
        source = importlib.import_module(name).__file__
        if source is not None:
            h.update(Path(source).read_bytes())
    return h.hexdigest()[:10]


def _dump(sim: Simulator, path: Path) -> None:
    with path.open("wb") as fh:
        pickle.dump(sim, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(path: Path) -> bool:
    """Whether the pickled simulator exists and still loads with the current code."""
    try:
        with path.open("rb") as fh:
            return isinstance(pickle.load(fh), Simulator)
    except (OSError, pickle.UnpicklingError, AttributeError, ImportError, EOFError):
        return False


# -- point-in-time features ---------------------------------------------------------------
class PointInTimeFeatures:
    """Feature rows as the online store would hold them at a day boundary, computed with
    ``features.compute`` from the world's canonical tables known before that boundary."""

    TABLES = ("nodes", "inventory_snapshots", "demand", "node_days", "allocations", "shipments")
    #: tables the node and node×SKU features place on the day of their event
    GRID_TABLES: tuple[str, ...] = ("inventory_snapshots", "demand", "node_days", "allocations")

    def __init__(self, raw_dir: Path, start: date) -> None:
        cut = pd.Timestamp(start, tz="UTC") - pd.Timedelta(days=FEATURE_KEEP_DAYS)
        self.frames: dict[str, list[pd.DataFrame]] = {}
        for name in self.TABLES:
            frame = pd.read_parquet(raw_dir / f"{name}.parquet")
            if "event_timestamp" in frame:
                frame = frame[frame["event_timestamp"] >= cut]
            self.frames[name] = [frame.reset_index(drop=True)]

    def add(self, tables: dict[str, pd.DataFrame]) -> None:
        for name in self.TABLES:
            if name in tables and name != "nodes":
                self.frames[name].append(tables[name])

    def snapshot(self, day: date) -> Any:
        from features import catalog
        from features.compute import lane_performance, node_ops, node_profile, node_sku_inventory
        from serving.feature_snapshot import FeatureSnapshot

        boundary = pd.Timestamp(day, tz="UTC")
        keep = boundary - pd.Timedelta(days=FEATURE_KEEP_DAYS)
        raw: dict[str, pd.DataFrame] = {}
        for name, parts in self.frames.items():
            frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            if "event_timestamp" in frame:
                frame = frame[
                    (frame["event_timestamp"] >= keep) & (frame["event_timestamp"] < boundary)
                ]
            self.frames[name] = [frame]
            raw[name] = frame
        short = pd.date_range(
            boundary - pd.Timedelta(days=29), boundary, freq="D", name="event_timestamp"
        )
        long = pd.date_range(keep, boundary, freq="D", name="event_timestamp")

        def at_boundary(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["event_timestamp"] == boundary]

        # the 30-day grid reads a row only if its day (``day_close``) lies on it: older rows
        # are left out before the pivots (same features, a fifth less CPU per snapshot);
        # shipments count on the day they are delivered, so they are kept whole
        first = short[0] - pd.Timedelta(days=1)
        recent = {
            name: frame[frame["event_timestamp"] > first] if name in self.GRID_TABLES else frame
            for name, frame in raw.items()
        }
        prof = at_boundary(node_profile(recent, short)).set_index("node_id")
        ops = at_boundary(node_ops(recent, short)).set_index("node_id")
        node = prof[list(catalog.NODE_PROFILE)].join(ops[list(catalog.NODE_OPS)])
        inv = at_boundary(node_sku_inventory(recent, short))
        lanes = lane_performance(raw, long)
        lanes = lanes[lanes["event_timestamp"] <= boundary].sort_values("event_timestamp")
        lanes = lanes.groupby(["node_id", "dest_region"], sort=False).tail(1)

        def records(
            frame: pd.DataFrame, keys: list[str], cols: Sequence[str]
        ) -> dict[Any, dict[str, float]]:
            values = frame[list(cols)].to_numpy(dtype=float)
            key_cols = [frame[k].astype(str).to_numpy() for k in keys]
            names = list(cols)
            out: dict[Any, dict[str, float]] = {}
            for i in range(len(frame)):
                key = key_cols[0][i] if len(keys) == 1 else tuple(c[i] for c in key_cols)
                out[key] = dict(zip(names, values[i], strict=True))
            return out

        node_rows = {
            str(k): dict(zip(node.columns, map(float, v), strict=True))
            for k, v in zip(node.index, node.to_numpy(), strict=True)
        }
        return FeatureSnapshot.from_online(
            node_rows,
            records(inv, ["node_id", "sku"], catalog.NODE_SKU_INVENTORY),
            records(lanes, ["node_id", "dest_region"], catalog.LANE_PERFORMANCE),
            newest_event=boundary.to_pydatetime(),
            oldest_event=boundary.to_pydatetime(),
            read_at=boundary.to_pydatetime(),
        )


# -- one policy ---------------------------------------------------------------------------
def _runtime_class() -> type:
    from serving.runtime import Runtime

    class BacktestRuntime(Runtime):
        """The API's runtime on a simulated clock, with features from the point-in-time
        snapshot the harness sets.

        Capacity use is what ``Ledger.orders_today()`` answers (distinct
        orders with a live allocation at the node today), kept up to date from the ledger
        calls the harness makes instead of re-read per order: same numbers, a query less.
        """

        sim_now: datetime = datetime(2000, 1, 1, tzinfo=UTC)
        taken: dict[str, set[str]]
        #: nodes whose reservation refused for capacity today (the ledger counts local days)
        full: set[str]

        def _capacity_counts(self) -> dict[str, int]:
            counts = {n: len(o) for n, o in self.taken.items() if o}
            counts.update({n: FULL for n in self.full})
            return counts

        def refresh_features(self) -> None:  # the harness sets ``snapshot`` each day
            return None

    return BacktestRuntime


#: the decision step: ``serving.decide.decide``'s signature (body, runtime, now=, exclude=)
Decider = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class PolicyJob:
    """One policy's run. ``mode`` is the routing mode (defaults to ``policy``); ``decider``
    replaces ``serving.decide.decide`` (tests use it for deliberately bad policies) and
    ``world_hook`` sees the world every morning once the books are fed, before the first
    decision (tests alter the hidden truth with it)."""

    prepared: Prepared
    policy: str
    days: int
    out_dir: Path
    inventory_accuracy: float | None = None
    progress: bool = False
    mode: str | None = None
    policy_file: Path | None = None
    decider: Decider | None = None
    world_hook: Callable[[WorldDriver], None] | None = None
    #: give the nodes their carriers' pick-up cut-offs as calendars (see ``carrier_calendars``)
    cutoffs: bool = True


@dataclass
class PolicyRun:
    policy: str
    days: list[DayTally] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    order_digest: str = ""


def run_policy(job: PolicyJob) -> PolicyRun:
    """Play every backtest day of one policy; returns its daily tallies."""
    os.environ.setdefault("ROUTECAST_LGBM_THREADS", "1")
    import logging

    from serving.decide import decide
    from serving.ledger import AllocationRequest, InitialStock, InventoryEvent
    from serving.schemas.order import Destination, OrderIn, OrderLineIn

    logging.getLogger("routecast").setLevel(logging.WARNING)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    prep = job.prepared
    with prep.sim_path.open("rb") as fh:
        sim: Simulator = pickle.load(fh)
    mode = job.mode or job.policy
    predictive = mode == "predictive"
    world = WorldDriver(
        sim,
        seed=prep.seed,
        start=prep.start,
        first_t=prep.first_t,
        inventory_accuracy=job.inventory_accuracy,
        record=predictive,
    )
    # the harness acts on the allocations only: skip ranking every candidate for the answer
    decide_fn: Decider = job.decider or partial(decide, explain=False)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    db = job.out_dir / f"ledger-{job.policy}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    settings = _settings(
        prep.home,
        scale=prep.scale,
        seed=prep.seed,
        database_url=f"sqlite:///{db}",
        default_mode=mode,
        auth_enabled=False,
        policy_file=job.policy_file,
        # features come point in time from the harness, never from the wall clock
        bring_forward_stale_features=False,
        live_features_seconds=0.0,
    )
    runtime = _runtime_class()(settings)
    runtime.ledger.clock = lambda: runtime.sim_now
    runtime.sim_now = sim_time(prep.start, 0.0) - timedelta(hours=1)
    runtime.taken = {}
    runtime.full = set()
    # routing reads capacity use through the catalogue: give it the harness's exact count
    # (its own is re-read from the ledger at most every two wall-clock seconds)
    runtime.catalogue._capacity_counts = runtime._capacity_counts
    runtime.start(background=False)
    if runtime.policy_error:
        raise ValueError(runtime.policy_error)
    if predictive and (
        runtime.models.get("stockout") is None or runtime.models.get("delivery") is None
    ):
        raise RuntimeError(f"registered models did not load: {runtime.models.errors()}")
    policy: Policy = runtime.policy
    pit = PointInTimeFeatures(prep.raw_dir, prep.start) if predictive else None
    run = PolicyRun(job.policy)
    digest = _digest_init()
    for d in range(job.days):
        orders = world.open_day()
        if job.cutoffs:
            carrier_calendars(runtime, world, orders.day)
        tally = DayTally(orders.day.isoformat())
        runtime.taken = {}
        runtime.full = set()
        runtime.sim_now = sim_time(orders.day, FEED_HOUR)
        feed = world.feed()
        if feed:
            runtime.ledger.load_stock(
                [InitialStock(world.node_ids[n], world.sku_ids[s], q) for n, s, q in feed],
                event_time=runtime.sim_now,
            )
        # the nodes' evening reports: parcels still queued (routing prices the wait)
        queued = world.backlog().tolist()
        runtime.catalogue.set_backlog(dict(zip(world.node_ids, queued, strict=True)))
        if job.world_hook is not None:
            job.world_hook(world)
        if pit is not None:
            runtime.snapshot = pit.snapshot(orders.day)
        lines = orders.lines
        starts = np.searchsorted(lines.order, np.arange(lines.n_orders + 1))
        _digest_day(digest, orders)
        for o, order_id in enumerate(orders.order_ids):
            a, b = int(starts[o]), int(starts[o + 1])
            hour = float(lines.hour[a])
            runtime.sim_now = sim_time(orders.day, hour)
            body = OrderIn(
                order_id=order_id,
                channel="web",
                mode=None,
                promise_days=None,
                destination=Destination(
                    country="US",
                    postal_code=None,
                    timezone=None,
                    lat=float(lines.dest_lat[a]),
                    lon=float(lines.dest_lon[a]),
                    region=str(lines.dest_state[a]),
                ),
                lines=[
                    OrderLineIn(
                        line_id=str(i - a),
                        sku=world.sku_ids[int(lines.sku[i])],
                        qty=int(lines.qty[i]),
                    )
                    for i in range(a, b)
                ],
                allow_partial=True,
            )
            tally.orders += 1
            tally.units += int(lines.qty[a:b].sum())
            _play_order(
                body, a, runtime, world, tally, decide_fn, AllocationRequest, InventoryEvent, hour
            )
        # the routing hint against the ledger's own count (its local day; shown, not fatal)
        tracked = {n: len(o) for n, o in runtime.taken.items() if o}
        counted = {n: c for n, c in runtime.ledger.orders_today().items() if c}
        drift = sorted(n for n in set(tracked) | set(counted) if tracked.get(n) != counted.get(n))
        if drift:
            _say(
                f"[{job.policy}] capacity use differs from the ledger at {drift[:5]}", job.progress
            )
        outcome = world.close_day()
        if pit is not None and outcome.tables is not None:
            pit.add(outcome.tables.frames)
        _tally_outcome(outcome, orders, world, policy, tally)
        run.days.append(tally)
        k = day_kpis(tally)
        _say(
            f"[{job.policy}] day {d + 1}/{job.days} {orders.day}: {tally.orders} orders, "
            f"rejection {k['rejection_rate']:.3f}, on-time {k['on_time_rate']:.3f}, "
            f"cost/order {k['cost_per_order']:.2f}; {_pace(t_start, cpu_start, d + 1, job.days)}",
            job.progress,
        )
    runtime.stop()
    run.seconds = time.perf_counter() - t_start
    run.cpu_seconds = time.process_time() - cpu_start
    run.order_digest = digest.hexdigest()
    return run


def _pace(t_start: float, cpu_start: float, done: int, days: int) -> str:
    """Wall and CPU time so far and the wall time left at this pace, for a long run's log
    (a process's CPU below its wall time means it shares the cores)."""
    wall = time.perf_counter() - t_start
    cpu = time.process_time() - cpu_start
    left = wall / done * (days - done)
    return f"{wall:.0f} s wall, {cpu:.0f} s CPU, about {left / 60:.0f} min left"


def carrier_calendars(runtime: Any, world: WorldDriver, day: date) -> None:
    """Each node's calendar cut-off = its carrier's pick-up time in the world (UTC by node
    type, ``simulation.carriers.CUTOFF_HOUR``), in the node's local time on ``day`` (so a
    daylight-saving change keeps the instant). A retailer knows when carriers collect from
    its nodes; routing prices the wait of an order placed after it (``cutoff_wait_days``).
    The same for every policy; only the rating policies read it."""
    from routing.calendar import zone
    from simulation.carriers import CUTOFF_HOUR

    node_type = world.sim.net.node_type
    cutoff = {nid: float(CUTOFF_HOUR[int(node_type[i])]) for i, nid in enumerate(world.node_ids)}
    changed = []
    for rec in runtime.ledger.nodes():
        hour = cutoff.get(rec.node_id)
        if hour is None:
            continue
        local = sim_time(day, hour).astimezone(zone(rec.timezone)).strftime("%H:%M")
        doc = dict(rec.calendar[0]) if rec.calendar else {}
        if doc.get("cutoff") != local:
            doc["cutoff"] = local
            changed.append(replace(rec, calendar=[doc]))
    if changed:
        runtime.ledger.upsert_nodes(changed)
        runtime.catalogue.reload_nodes()


def _play_order(
    body: Any,
    first_line: int,
    runtime: Any,
    world: WorldDriver,
    tally: DayTally,
    decide: Callable[..., dict[str, Any]],
    AllocationRequest: type,
    InventoryEvent: type,
    hour: float,
) -> None:
    """Route, reserve, pick, reject/reroute and ship one order; tallies what happened."""
    from serving.ledger.errors import CapacityReached

    ledger = runtime.ledger
    t0 = time.perf_counter()
    answer = decide(body, runtime, now=runtime.sim_now)
    tally.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
    tally.degraded += int(bool(answer.get("degraded")))
    qty_by_line = {ln.line_id: int(ln.qty) for ln in body.lines}
    if not answer["allocations"]:
        tally.unfilled_units += sum(qty_by_line.values())
        return
    requests = [
        AllocationRequest(a["line_id"], a["node_id"], a["sku"], int(a["qty"]))
        for a in answer["allocations"]
    ]
    for _attempt in range(3):
        try:
            ledger.reserve_order(body.order_id, requests, request_hash=body.order_id, plan={})
            break
        except CapacityReached as exc:  # the ledger counts the node's local day: route again
            runtime.full.add(str(exc.extra.get("node_id")))
            answer = decide(body, runtime, now=runtime.sim_now)
            if not answer["allocations"]:
                tally.unfilled_units += sum(qty_by_line.values())
                return
            requests = [
                AllocationRequest(a["line_id"], a["node_id"], a["sku"], int(a["qty"]))
                for a in answer["allocations"]
            ]
    else:
        tally.unfilled_units += sum(qty_by_line.values())
        return
    live: dict[str, int] = {}
    _take(runtime, body.order_id, requests, live)
    unfilled = sum(qty_by_line.values()) - sum(r.qty for r in requests)
    excluded: set[str] = set()
    #: nodes holding a picked part of each line: a rejection names lines, so a reroute must
    #: not send another part of a line to a node that already picked some of it
    picked: dict[str, set[str]] = {}
    pending = requests
    line_hour = hour
    while pending:
        rejected: dict[str, list[Any]] = {}
        retry = line_hour
        for r in pending:
            tally.allocations += 1
            ans = world.pick(
                first_line + int(r.line_id), world.node_index[r.node_id], r.qty, line_hour
            )
            if ans.accepted:
                picked.setdefault(r.line_id, set()).add(r.node_id)
                continue
            tally.rejections += 1
            rejected.setdefault(r.node_id, []).append(r)
            retry = max(retry, ans.retry_hour)
            if ans.recounted is not None:
                runtime.sim_now = sim_time(runtime.sim_now.date(), min(ans.retry_hour, 23.5))
                ledger.adjust(
                    [
                        InventoryEvent(
                            f"spot-{body.order_id}-{r.node_id}-{r.sku}",
                            runtime.sim_now,
                            r.node_id,
                            r.sku,
                            "count",
                            ans.recounted,
                        )
                    ]
                )
        if not rejected:
            break
        line_hour = retry
        runtime.sim_now = sim_time(runtime.sim_now.date(), min(line_hour, 23.5))
        reroute: dict[str, int] = {}
        exception = False
        for node_id, parts in rejected.items():
            res = ledger.reject_allocation(
                body.order_id, node_id, [p.line_id for p in parts], "not_in_stock"
            )
            live[node_id] -= len(res.reroute)
            if live[node_id] == 0:
                runtime.taken[node_id].discard(body.order_id)
            excluded.add(node_id)
            for rl in res.reroute:
                reroute[rl.line_id] = reroute.get(rl.line_id, 0) + int(rl.qty)
            exception = exception or res.order_status == "exception"
        lost = sum(reroute.values())
        if exception:
            unfilled += lost
            break
        tally.reroutes += 1
        lines = [
            ln.model_copy(update={"qty": reroute[ln.line_id]})
            for ln in body.lines
            if ln.line_id in reroute
        ]
        t0 = time.perf_counter()
        again = decide(
            body.model_copy(update={"lines": lines}),
            runtime,
            now=runtime.sim_now,
            exclude=frozenset(excluded.union(*(picked.get(lid, set()) for lid in reroute))),
        )
        tally.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        if not again["allocations"]:
            unfilled += lost
            break
        pending = [
            AllocationRequest(a["line_id"], a["node_id"], a["sku"], int(a["qty"]))
            for a in again["allocations"]
        ]
        unfilled += lost - sum(r.qty for r in pending)
        try:
            ledger.reallocate(body.order_id, pending)
        except CapacityReached as exc:
            runtime.full.add(str(exc.extra.get("node_id")))
            unfilled += sum(r.qty for r in pending)
            break
        _take(runtime, body.order_id, pending, live)
    tally.unfilled_units += unfilled
    ledger.ship_order(body.order_id)


def _digest_init() -> Any:
    import hashlib

    return hashlib.sha256()


def _digest_day(digest: Any, orders: DayOrders) -> None:
    """Fingerprint of the order stream: equal across policies under common random numbers."""
    lines = orders.lines
    digest.update(lines.sku.tobytes() + lines.qty.tobytes() + lines.dest_zip.tobytes())


def _take(runtime: Any, order_id: str, requests: Sequence[Any], live: dict[str, int]) -> None:
    for r in requests:
        live[r.node_id] = live.get(r.node_id, 0) + 1
        runtime.taken.setdefault(r.node_id, set()).add(order_id)


def _tally_outcome(
    outcome: DayOutcome,
    orders: DayOrders,
    world: WorldDriver,
    policy: Policy,
    tally: DayTally,
) -> None:
    """Realised cost on the terms of ``routing.ratings`` (``rate_realised``: shipping,
    handling and lateness against the promise with the parcel's real delivery; the parcel
    fee per shipment; the reroute cost per rejection), km and the CO2 proxy."""
    from simulation.assortment import PRODUCT_GROUPS
    from simulation.backtest.kpis import CO2_FACTORS

    lines = orders.lines
    ship = outcome.ship
    net, cat = world.sim.net, world.sim.catalog
    default = policy.rules(None)
    # delivered (days after the order was placed) against the promise made at order time
    first_hour = lines.hour[np.searchsorted(lines.order, ship.order)]
    from_order = ship.delivery_days + (ship.hour - first_hour) / 24.0
    ship_of = {
        (int(o), int(n)): i for i, (o, n) in enumerate(zip(ship.order, ship.node, strict=True))
    }
    ok = ~outcome.pick_rejected
    for li, node, qty in zip(
        outcome.pick_line[ok], outcome.pick_node[ok], outcome.pick_qty[ok], strict=True
    ):
        sku = int(lines.sku[li])
        rules = policy.rules(PRODUCT_GROUPS[int(cat.group[sku])])
        s = ship_of[(int(lines.order[li]), int(node))]
        r = rate_realised(
            weight_kg=float(cat.weight_kg[sku]),
            handling_cost=float(net.handling_cost[node]),
            distance_km=float(ship.distance_km[s]),
            rules=rules,
            delivery_days=float(from_order[s]),
            promise_days=rules.promise_days,
        )
        tally.shipping_cost += r.per_unit_shipping * int(qty)
        tally.handling_cost += r.handling
        tally.late_cost += r.late_cost
    tally.reroute_cost += tally.rejections * default.reroute_cost
    for km in ship.distance_km:
        tally.shipping_cost += shipment_cost(float(km), default, default.per_shipment_cost)
    tally.shipments += len(ship.order)
    tally.km += float(ship.distance_km.sum())
    tally.co2_kg += float(
        (ship.weight_kg / 1000.0 * ship.distance_km * CO2_FACTORS[ship.carrier]).sum()
    )
    late = from_order > default.promise_days
    shipped_orders = np.unique(ship.order)
    late_orders = np.unique(ship.order[late])
    tally.orders_shipped += len(shipped_orders)
    tally.orders_on_time += len(shipped_orders) - len(late_orders)


# -- the whole backtest -------------------------------------------------------------------
@dataclass(frozen=True)
class BoundJob:
    prepared: Prepared
    days: int
    inventory_accuracy: float | None = None
    progress: bool = False
    policy_file: Path | None = None
    time_limit: float | None = None


@dataclass
class BoundRun:
    run: PolicyRun
    results: list[Any]


def run_bound(job: BoundJob) -> BoundRun:
    """The perfect-foresight bound played on its own copy of the world (see ``BoundPlanner``)."""
    policy = _load_policy(job.policy_file)
    planner = BoundPlanner(policy=policy, time_limit=job.time_limit)
    run = run_foresight(
        job.prepared,
        job.days,
        planner,
        inventory_accuracy=job.inventory_accuracy,
        progress=job.progress,
        policy=policy,
    )
    return BoundRun(run, planner.results)


def _load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy.default()
    import yaml

    from routing import policy_from_dict

    return policy_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def bound_block(bound: BoundRun, *, seed: int) -> dict[str, Any]:
    """The JSON ``bound``: the solver's figures on the policies' cost terms, plus the
    outcomes of playing its plan (it is never rejected; its parcels still meet carriers)."""
    from simulation.backtest import bound as bound_mod

    results = bound.results
    out = bound_mod.summarise(results)
    orders = max(out["orders"], 1)
    cost = sum(r.costs.shipping + r.costs.handling for r in results) / orders
    total = sum(r.costs.shipping + r.costs.handling + r.costs.late for r in results) / orders
    out.update(
        cost_per_order=cost,
        total_cost_per_order=total,
        basis="cost_per_order = shipping + parcel fees + handling; total_cost_per_order adds "
        "realised lateness (routing.ratings terms, realised delivery); policies add their "
        "reroute cost; the bound's unfilled-unit penalty is left out",
        realised=summarise(bound.run.days, seed=seed),
    )
    for day, r in zip(out["daily"], results, strict=True):
        day["cost_per_order"] = (r.costs.shipping + r.costs.handling) / max(r.orders, 1)
        day["total_cost_per_order"] = (r.costs.shipping + r.costs.handling + r.costs.late) / max(
            r.orders, 1
        )
    return out


def run_backtest(
    spec: BacktestSpec, out_dir: Path | None = None, *, bound: bool = True
) -> dict[str, Any]:
    """Prepare the world, run every policy and the bound (in parallel processes), summarise."""
    from simulation.backtest.bound import gap_closed

    unknown = [p for p in spec.policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    if spec.days < 1:
        raise ValueError("days must be at least 1")
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    prepared = prepare(spec)
    t_prep = time.perf_counter() - t0
    run_dir = (out_dir or spec.work_dir / "runs").resolve()
    jobs = [
        PolicyJob(
            prepared,
            p,
            spec.days,
            run_dir,
            spec.inventory_accuracy,
            spec.progress,
            policy_file=spec.policy_file,
        )
        for p in spec.policies
    ]
    # the predictive policy is the slowest: start it first
    jobs.sort(key=lambda j: j.policy != "predictive")
    bjob = BoundJob(prepared, spec.days, spec.inventory_accuracy, spec.progress, spec.policy_file)
    _say(
        f"backtest: {len(jobs)} policies{' + bound' if bound else ''} × {spec.days} days "
        f"on {spec.workers} worker(s)",
        spec.progress,
    )
    if spec.workers > 1:
        with ProcessPoolExecutor(max_workers=spec.workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_policy, j) for j in jobs]
            bound_future = pool.submit(run_bound, bjob) if bound else None
            runs = [f.result() for f in futures]
            bound_run = bound_future.result() if bound_future is not None else None
    else:
        runs = [run_policy(j) for j in jobs]
        bound_run = run_bound(bjob) if bound else None
    digests = {r.order_digest for r in runs}
    if bound_run is not None:
        digests.add(bound_run.run.order_digest)
    if len(digests) != 1:
        raise RuntimeError("policies saw different order streams; common random numbers broke")
    by_policy = {r.policy: r for r in runs}
    policies = {p: summarise(by_policy[p].days, seed=spec.seed) for p in spec.policies}
    result: dict[str, Any] = {
        "scale": spec.scale,
        "seed": spec.seed,
        "days": spec.days,
        "start": prepared.start.isoformat(),
        "history_days": prepared.history_days,
        "inventory_accuracy": spec.inventory_accuracy,
        "policy_file": str(spec.policy_file) if spec.policy_file else None,
        "orders": int(sum(d.orders for d in by_policy[spec.policies[0]].days)),
        "policies": policies,
        "daily": {p: [day_kpis(d) for d in by_policy[p].days] for p in spec.policies},
    }
    if bound_run is not None:
        block = bound_block(bound_run, seed=spec.seed)
        result["bound"] = block
        if "distance" in policies:
            base = policies["distance"]["total_cost_per_order"]
            result["gap_closed"] = {
                p: gap_closed(k["total_cost_per_order"], base, block["total_cost_per_order"])
                for p, k in policies.items()
            }
    result.update(
        models=prepared.model_versions,
        seconds=round(time.perf_counter() - t0, 1),
        seconds_prepare=round(t_prep, 1),
        seconds_by_policy={r.policy: round(r.seconds, 1) for r in runs},
        cpu_seconds_by_policy={r.policy: round(r.cpu_seconds, 1) for r in runs},
        workers=spec.workers,
        load_average_start=[round(x, 2) for x in load0],
        load_average_end=[round(x, 2) for x in os.getloadavg()],
    )
    if bound_run is not None:
        result["seconds_by_policy"]["bound"] = round(bound_run.run.seconds, 1)
        result["cpu_seconds_by_policy"]["bound"] = round(bound_run.run.cpu_seconds, 1)
    return result


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=_json_default))


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(type(v))


__all__ = [
    "BACKTEST_START",
    "POLICIES",
    "BacktestSpec",
    "BoundJob",
    "BoundPlanner",
    "BoundRun",
    "Planner",
    "PointInTimeFeatures",
    "PolicyJob",
    "PolicyRun",
    "Prepared",
    "bound_block",
    "prepare",
    "run_backtest",
    "run_bound",
    "run_foresight",
    "run_policy",
    "write_json",
]


# -- perfect foresight --------------------------------------------------------------------
#: a clairvoyant planner: sees the world (hidden truth included) and the day's orders,
#: returns (line, node, units) allocations
Planner = Callable[[WorldDriver, DayOrders], Sequence[tuple[int, int, int]]]


@dataclass
class BoundPlanner:
    """The perfect-foresight bound (``bound.solve_bound``) as a planner: each day's orders
    on the true shelf, with every candidate parcel's realised transit, the nodes' daily
    capacity fence and the routing policy's cost terms. Keeps each day's ``BoundResult``."""

    policy: Policy = field(default_factory=Policy.default)
    time_limit: float | None = None
    results: list[Any] = field(default_factory=list)

    def __call__(self, world: WorldDriver, orders: DayOrders) -> list[tuple[int, int, int]]:
        from routing import Network, Node, Order, OrderLine
        from routing import StockRow as RouteStock
        from simulation.assortment import PRODUCT_GROUPS
        from simulation.backtest import bound

        net, cat = world.sim.net, world.sim.catalog
        lines = orders.lines
        shelf = world.truth().shelf
        nodes = [
            Node(
                node_id=world.node_ids[i],
                node_type=("dc", "store", "3pl")[int(net.node_type[i])],
                lat=float(net.lat[i]),
                lon=float(net.lon[i]),
                enabled=bool(net.enabled[i]),
                priority=int(net.priority[i]),
                ships_groups=frozenset(
                    g for g, ok in zip(PRODUCT_GROUPS, net.ships[i], strict=True) if ok
                ),
                handling_cost=float(net.handling_cost[i]),
                daily_capacity=int(net.daily_capacity[i]),
            )
            for i in range(len(world.node_ids))
        ]
        skus = np.unique(lines.sku)
        stock = [
            RouteStock(world.node_ids[n], world.sku_ids[s], float(shelf[n, s]))
            for s in skus
            for n in np.flatnonzero(net.stocked[:, s])
        ]
        starts = np.searchsorted(lines.order, np.arange(lines.n_orders + 1))
        routed: list[Order] = []
        for o, oid in enumerate(orders.order_ids):
            a, b = int(starts[o]), int(starts[o + 1])
            routed.append(
                Order(
                    order_id=oid,
                    channel="web",
                    dest_lat=float(lines.dest_lat[a]),
                    dest_lon=float(lines.dest_lon[a]),
                    dest_region=str(lines.dest_state[a]),
                    allow_partial=True,
                    lines=tuple(
                        OrderLine(
                            line_id=str(i - a),
                            sku=world.sku_ids[int(lines.sku[i])],
                            qty=float(lines.qty[i]),
                            product_group=PRODUCT_GROUPS[int(cat.group[lines.sku[i]])],
                            weight_kg=float(cat.weight_kg[lines.sku[i]]),
                            unit_price=float(cat.price[lines.sku[i]]),
                        )
                        for i in range(a, b)
                    ),
                )
            )
        order_pos = {oid: int(starts[o]) for o, oid in enumerate(orders.order_ids)}

        def delivery_days(positions: Sequence[int], node_ids: Sequence[str]) -> np.ndarray:
            first_line = starts[np.asarray(positions, dtype=np.int64)]
            nodes = np.array([world.node_index[n] for n in node_ids], dtype=np.int64)
            return world.transit_days(first_line, nodes)

        day, index = bound.build_day(
            routed,
            Network(nodes, stock),
            policy=self.policy,
            now=sim_time(orders.day, 12.0),
            delivery_days_many=delivery_days,
        )
        result = bound.solve_bound(day, time_limit=self.time_limit or bound.DEFAULT_TIME_LIMIT)
        self.results.append(result)
        units = bound.integral_plan(day, result.plan)  # LP days: whole units within limits
        inv_pair = {p: k for k, p in index.pair_of.items()}
        out = []
        for p in np.flatnonzero(units > 0):
            oid, line_id, node_id = inv_pair[int(p)]
            out.append((order_pos[oid] + int(line_id), world.node_index[node_id], int(units[p])))
        return out


def run_foresight(
    prepared: Prepared,
    days: int,
    plan: Planner,
    *,
    inventory_accuracy: float | None = None,
    progress: bool = False,
    name: str = "bound",
    policy: Policy | None = None,
) -> PolicyRun:
    """Play the same order stream with a clairvoyant planner (no ledger: it knows the shelf);
    outcomes and KPIs are tallied exactly as for the policies."""

    t_start, cpu_start = time.perf_counter(), time.process_time()
    with prepared.sim_path.open("rb") as fh:
        sim: Simulator = pickle.load(fh)
    world = WorldDriver(
        sim,
        seed=prepared.seed,
        start=prepared.start,
        first_t=prepared.first_t,
        inventory_accuracy=inventory_accuracy,
    )
    policy = policy or Policy.default()
    run = PolicyRun(name)
    digest = _digest_init()
    for d in range(days):
        orders = world.open_day()
        _digest_day(digest, orders)
        tally = DayTally(orders.day.isoformat())
        tally.orders = orders.lines.n_orders
        tally.units = int(orders.lines.qty.sum())
        t0 = time.perf_counter()
        allocations = sorted(
            plan(world, orders), key=lambda a: (orders.lines.hour[a[0]], a[0], a[1])
        )
        tally.latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        served = 0
        for li, node, qty in allocations:
            tally.allocations += 1
            ans = world.pick(int(li), int(node), int(qty), float(orders.lines.hour[li]))
            if ans.accepted:
                served += int(qty)
            else:
                tally.rejections += 1
        tally.unfilled_units = tally.units - served
        outcome = world.close_day()
        _tally_outcome(outcome, orders, world, policy, tally)
        run.days.append(tally)
        _say(
            f"[{name}] day {d + 1}/{days} {orders.day}: {tally.orders} orders; "
            f"{_pace(t_start, cpu_start, d + 1, days)}",
            progress,
        )
    run.seconds = time.perf_counter() - t_start
    run.cpu_seconds = time.process_time() - cpu_start
    run.order_digest = digest.hexdigest()
    return run
