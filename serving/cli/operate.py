"""``routecast operate``: the simulated world acts as the outside world against the service.

The world is the backtest's ``WorldDriver`` (``simulation/backtest/world.py``), continued from
the end of the demo's history. Each simulated day, over HTTP:

1. morning: the stores' systems send what their books say (counts of every changed node×SKU
   record, the whole book on the first day) to ``POST /v1/inventory/adjustments``;
2. the day's orders go to ``POST /v1/orders`` in time order; every allocation is picked by its
   node from the hidden shelf (``world.pick``); a node that cannot pick rejects it through
   ``POST /v1/orders/{id}/rejections`` (the service reroutes and the new node picks), and a
   store that recounts the shelf after a rejection sends that count;
3. close: the world ships (``world.close_day``), the shipments are posted with their carrier,
   deliveries are confirmed with the world's real arrival time once it has passed;
4. the loop runs (``serving/scheduler.py``: export → features refresh, retrain + gate on its
   period) on the simulated clock.

By default the service runs in this process on a free port with the simulated clock, so its
decisions, ledger, features and promises all live on simulated time, and the loop runs here.
``--url`` targets a running service started with ``routecast serve --simulated-clock
--refresh-every 1d`` (same home): operate sets its time (``PUT /v1/admin/clock``), and after
each day waits for the service's own loop to run what is due (``GET /v1/admin/loop``).

Feature age is measured per decision: the order's time minus ``features_as_of``, the oldest
feature row the models read for it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from serving.cli.common import console, settings
from serving.cli.loop import every
from serving.settings import Settings

if TYPE_CHECKING:
    from serving.scheduler import Scheduler
    from serving.sim_clock import SimulatedClock

#: hours (UTC) of the simulated day when the books are sent and when the day is closed
MORNING_HOUR, CLOSE_HOUR = 5.0, 23.0
REASON = "not_in_stock"


class RemoteClock:
    """The clock of a service started with ``--simulated-clock``, set over HTTP; like
    ``SimulatedClock.set`` it only moves forward (earlier times are kept where they are)."""

    def __init__(self, http: Any) -> None:
        self.http = http
        self.now: datetime | None = None

    def set(self, at: datetime) -> datetime:
        if self.now is not None and at <= self.now:
            return self.now
        r = self.http.put("/v1/admin/clock", json={"now": at.isoformat()})
        if r.status_code != 200:
            raise RuntimeError(f"PUT /v1/admin/clock: {r.status_code} {r.text[:300]}")
        self.now = datetime.fromisoformat(r.json()["now"])
        return self.now


def check_remote_clock(http: Any, url: str) -> None:
    """Refuse a service on its wall clock: simulated days would not move its time."""
    r = http.get("/v1/admin/clock")
    if r.status_code != 200:
        raise typer.BadParameter(
            f"{url} does not let an admin key read its clock ({r.status_code}): give an admin "
            "key (--api-key / ROUTECAST_API_KEY)",
            param_hint="--url",
        )
    if not r.json().get("simulated"):
        raise typer.BadParameter(
            f"{url} runs on its wall clock; start it with `routecast serve --simulated-clock "
            "--refresh-every 1d` so the simulated days move its time and its loop",
            param_hint="--url",
        )


@dataclass
class DayRow:
    day: str
    orders: int = 0
    unfilled: int = 0
    picks: int = 0
    rejections: int = 0
    shipments: int = 0
    deliveries_confirmed: int = 0
    on_time: int = 0
    degraded: int = 0
    #: max over the day's decisions of (decision time - oldest feature row it read)
    feature_age_hours_max: float = 0.0
    #: the oldest row anywhere in the service's snapshot (read, served or not), for contrast
    store_oldest_feature_age_hours_max: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    loop: dict[str, float] = field(default_factory=dict)
    loop_steps: dict[str, float] = field(default_factory=dict)

    @property
    def rejection_rate(self) -> float:
        return round(self.rejections / self.picks, 4) if self.picks else 0.0

    @property
    def on_time_rate(self) -> float | None:
        n = self.deliveries_confirmed
        return round(self.on_time / n, 4) if n else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "orders": self.orders,
            "unfilled": self.unfilled,
            "rejection_rate": self.rejection_rate,
            "on_time_rate": self.on_time_rate,
            "deliveries_confirmed": self.deliveries_confirmed,
            "degraded_decisions": self.degraded,
            "feature_age_hours_max": round(self.feature_age_hours_max, 2),
            "store_oldest_feature_age_hours_max": round(self.store_oldest_feature_age_hours_max, 2),
            "models": self.models,
            "loop_seconds": self.loop,
            "loop_step_seconds": self.loop_steps,
        }


def _sim_time(day: date, hour: float) -> datetime:
    from simulation.backtest.world import sim_time

    return sim_time(day, hour)


def world_after_history(s: Settings) -> Any:
    """The demo's simulated world, replayed to the end of its history (deterministic), as a
    ``WorldDriver`` on the next day."""
    from simulation.backtest.world import WorldDriver
    from simulation.scales import scale_config
    from simulation.simulator import Simulator
    from simulation.world import MANIFEST

    path = s.raw_dir / MANIFEST
    if not path.exists():
        raise typer.BadParameter(f"no simulated world at {s.raw_dir}; run `routecast demo` first")
    manifest = json.loads(path.read_text())
    first = date.fromisoformat(manifest["first_day"])
    days = int(manifest["days"])
    calendar = [first + timedelta(days=i) for i in range(days)]
    cfg = scale_config(manifest["scale"])
    sim = Simulator(cfg, int(manifest["seed"]))
    for _ in sim.run(calendar, cfg.burn_in_days):
        pass
    return WorldDriver(
        sim,
        seed=int(manifest["seed"]),
        start=calendar[-1] + timedelta(days=1),
        first_t=cfg.burn_in_days + days,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def in_process_service(s: Settings, clock: SimulatedClock) -> Iterator[tuple[str, Any]]:
    """The API on a free local port, on the simulated clock; yields (url, runtime)."""
    import uvicorn

    from serving.app import create_app

    app = create_app(s, background=True, clock=clock)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, name="routecast-operate-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 300
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the in-process service did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", app.state.runtime
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Operator:
    """Plays the world's days against the API (see module docstring)."""

    def __init__(
        self,
        http: Any,
        world: Any,
        clock: SimulatedClock | RemoteClock,
        scheduler: Scheduler | None,
    ) -> None:
        self.http = http
        self.world = world
        self.clock = clock
        self.scheduler = scheduler  # None: the service runs its own loop (``--url``)
        self.loop_runs: list[dict[str, Any]] = []
        self.pending: list[tuple[datetime, str, str]] = []  # (delivered_at, order, shipment)
        self.promises: dict[str, dict[str, Any]] = {}
        self.rows: list[DayRow] = []
        self.first_day = True

    # -- helpers ------------------------------------------------------------------------
    def _at(self, day: date, hour: float) -> datetime:
        return self.clock.set(_sim_time(day, hour))

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.http.post(path, json=body)
        if r.status_code >= 500:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")
        return r

    def _counts(self, rows: list[tuple[int, int, int]], at: datetime, tag: str) -> None:
        w = self.world
        events = [
            {
                "event_id": f"{tag}-{w.node_ids[n]}-{w.sku_ids[k]}",
                "event_time": at.isoformat(),
                "node_id": w.node_ids[n],
                "sku": w.sku_ids[k],
                "kind": "count",
                "qty": int(q),
            }
            for n, k, q in rows
        ]
        for i in range(0, len(events), 5000):
            r = self._post("/v1/inventory/adjustments", {"events": events[i : i + 5000]})
            if r.status_code != 200:
                raise RuntimeError(f"adjustments refused: {r.status_code} {r.text[:300]}")

    def _store_age(self, row: DayRow) -> None:
        body = self.http.get("/readyz").json()
        if body.get("features_oldest_event"):
            now = datetime.fromisoformat(body["now"])
            age = (now - datetime.fromisoformat(body["features_oldest_event"])).total_seconds()
            row.store_oldest_feature_age_hours_max = max(
                row.store_oldest_feature_age_hours_max, age / 3600.0
            )

    # -- one day ------------------------------------------------------------------------
    def play_day(self) -> DayRow:
        import numpy as np

        w = self.world
        orders = w.open_day()
        day = orders.day
        row = DayRow(day.isoformat())
        morning = self._at(day, MORNING_HOUR)
        changed = w.feed()
        if self.first_day:  # the stores' whole books once, then what changed each morning
            rec = w.sim.inv.recorded
            stocked = np.argwhere(w.sim.inv.stocked)
            changed = [(int(n), int(k), int(rec[n, k])) for n, k in stocked]
            self.first_day = False
        self._counts(changed, morning, f"am{day:%Y%m%d}")
        self._store_age(row)

        lines = orders.lines
        by_order: dict[int, list[int]] = {}
        for li in np.argsort(lines.hour, kind="stable"):
            by_order.setdefault(int(lines.order[li]), []).append(int(li))
        placed: list[str] = []
        for o, idx in sorted(by_order.items(), key=lambda kv: float(lines.hour[kv[1][0]])):
            if self._play_order(orders, o, idx, row):
                placed.append(orders.order_ids[o])
        self._store_age(row)

        outcome = w.close_day()
        self._at(day, CLOSE_HOUR)
        self._ship(outcome, orders, day, row)
        self._confirm(day, row)
        return row

    def _play_order(self, orders: Any, o: int, idx: list[int], row: DayRow) -> bool:
        w, lines = self.world, orders.lines
        oid = orders.order_ids[o]
        first = idx[0]
        hour = float(lines.hour[first])
        self._at(orders.day, hour)
        body = {
            "order_id": oid,
            "channel": "web",
            "destination": {
                "country": "US",
                "postal_code": f"{int(lines.dest_zip[first]):05d}",
                "region": str(lines.dest_state[first]),
                "lat": float(lines.dest_lat[first]),
                "lon": float(lines.dest_lon[first]),
            },
            "lines": [
                {
                    "line_id": str(li),
                    "sku": w.sku_ids[int(lines.sku[li])],
                    "qty": int(lines.qty[li]),
                }
                for li in idx
            ],
        }
        r = self._post("/v1/orders", body)
        row.orders += 1
        if r.status_code != 201:
            row.unfilled += 1
            return False
        answer = r.json()
        decision = answer.get("decision") or {}
        row.degraded += bool(decision.get("degraded"))
        if decision.get("features_as_of"):
            used = datetime.fromisoformat(decision["features_as_of"])
            age = (_sim_time(orders.day, hour) - used).total_seconds() / 3600.0
            row.feature_age_hours_max = max(row.feature_age_hours_max, age)
        for name, version in (decision.get("models") or {}).items():
            seen = row.models.get(name)
            row.models[name] = version if seen in (None, version) else f"{seen},{version}"
        picked: set[int] = set()
        allocations = answer["allocations"]
        for _ in range(8):  # each round picks what is newly reserved; rejections reroute
            todo = [
                a
                for a in allocations
                if a.get("status", "reserved") == "reserved" and a["allocation_id"] not in picked
            ]
            if not todo:
                break
            rejected: dict[str, list[str]] = {}
            retry = hour
            for a in todo:
                picked.add(a["allocation_id"])
                node = w.node_index[a["node_id"]]
                got = w.pick(int(a["line_id"]), node, int(a["qty"]), hour)
                row.picks += 1
                if got.accepted:
                    continue
                row.rejections += 1
                rejected.setdefault(a["node_id"], []).append(a["line_id"])
                retry = max(retry, got.retry_hour)
                if got.recounted is not None:
                    sku = int(lines.sku[int(a["line_id"])])
                    at = self._at(orders.day, got.retry_hour)
                    tag = f"spot{orders.day:%Y%m%d}-{oid}-{a['line_id']}"
                    self._counts([(node, sku, got.recounted)], at, tag)
            if not rejected:
                break
            hour = retry
            self._at(orders.day, hour)
            for node_id, line_ids in rejected.items():
                rj = self._post(
                    f"/v1/orders/{oid}/rejections",
                    {"node_id": node_id, "line_ids": line_ids, "reason": REASON},
                )
                if rj.status_code == 200:
                    allocations = rj.json()["order"]["allocations"]
        return True

    def _ship(self, outcome: Any, orders: Any, day: date, row: DayRow) -> None:
        from simulation.carriers import CARRIERS

        ship = outcome.ship
        w = self.world
        close = _sim_time(day, CLOSE_HOUR)
        arrivals: dict[str, dict[str, tuple[datetime, str]]] = {}
        for i in range(len(ship.order)):
            oid = orders.order_ids[int(ship.order[i])]
            node_id = w.node_ids[int(ship.node[i])]
            left = _sim_time(day, float(ship.hour[i]))
            arrives = left + timedelta(days=float(ship.delivery_days[i]))
            arrivals.setdefault(oid, {})[node_id] = (arrives, CARRIERS[int(ship.carrier[i])])
        for oid, by_node in arrivals.items():
            carrier = next(iter(by_node.values()))[1]
            shipped_at = min(close, min(a for a, _ in by_node.values()))
            r = self._post(
                f"/v1/orders/{oid}/shipments",
                {"carrier": carrier, "shipped_at": shipped_at.isoformat()},
            )
            if r.status_code != 200:
                continue
            for s in r.json()["shipments"]:
                if s["node_id"] in by_node and s["delivered_at"] is None:
                    arrives = max(by_node[s["node_id"]][0], shipped_at)
                    self.pending.append((arrives, oid, s["shipment_id"]))
                    row.shipments += 1

    def _confirm(self, day: date, row: DayRow) -> None:
        """Confirm every parcel that has arrived by the end of ``day``."""
        end = _sim_time(day + timedelta(days=1), 0.0)
        due = [p for p in self.pending if p[0] < end]
        self.pending = [p for p in self.pending if p[0] >= end]
        if due:
            self.clock.set(max(p[0] for p in due))
        for arrives, oid, sid in due:
            r = self._post(
                f"/v1/orders/{oid}/deliveries",
                {
                    "deliveries": [
                        {
                            "event_id": f"dl-{sid}",
                            "delivered_at": arrives.isoformat(),
                            "shipment_id": sid,
                        }
                    ]
                },
            )
            if r.status_code != 200:
                continue
            row.deliveries_confirmed += 1
            order = r.json()["order"]
            if self._kept(order, sid, arrives):
                row.on_time += 1

    @staticmethod
    def _kept(order: dict[str, Any], sid: str, arrives: datetime) -> bool:
        """Delivered by the promise's date for that shipment's node (the order's otherwise)."""
        promise = (order.get("decision") or {}).get("promise") or {}
        if not promise:
            return False
        node = next(s["node_id"] for s in order["shipments"] if s["shipment_id"] == sid)
        leg = next((x for x in promise.get("shipments") or [] if x["node_id"] == node), promise)
        local = arrives.astimezone(ZoneInfo(promise["timezone"])).date()
        return local <= date.fromisoformat(leg["deliver_by"])

    def run_loop(self, day: date, row: DayRow) -> None:
        """The loop's steps due at the start of the next simulated day: run here, or (a
        service with its own loop) waited for until none is due or running."""
        at = self._at(day + timedelta(days=1), 0.25)
        if self.scheduler is not None:
            self.scheduler.tick(at)
            runs = self.scheduler.status(at, recent=10**6)["runs"]
        else:
            runs = self._wait_for_remote_loop(at)
        for run in runs:
            if datetime.fromisoformat(run["at"]) != at:
                continue
            self.loop_runs.append(run)
            row.loop[run["name"]] = run["seconds"]
            row.loop_steps.update(run["detail"].get("steps") or {})
            if run["error"]:
                console.print(f"[red]loop {run['name']} failed: {run['error']}[/red]")

    def wait_for_reload(self, row: DayRow, timeout: float = 300.0) -> None:
        """After the loop ran, wait until the service has re-read its features and serves
        the champions it promoted (it polls the store and the registry on its own)."""
        done = datetime.now(UTC)
        promoted = {
            name: r["detail"]["challengers"][name]
            for r in self.loop_runs
            for name, ok in r["detail"].get("promoted", {}).items()
            if ok and r["error"] is None
        }
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.http.get("/readyz").json()
            read = body.get("features_read_at")
            fresh = read is not None and datetime.fromisoformat(read) >= done
            models = body.get("models") or {}
            if fresh and all(str(models.get(n)) == str(v) for n, v in promoted.items()):
                return
            time.sleep(0.5)
        console.print(f"[yellow]{row.day}: the service had not reloaded after {timeout:.0f} s")

    def _wait_for_remote_loop(self, at: datetime, timeout: float = 3600.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.http.get("/v1/admin/loop").json()
            if not body.get("attached"):
                raise RuntimeError(
                    "the service runs no loop: start it with `routecast serve "
                    "--simulated-clock --refresh-every 1d`"
                )
            if not body["due"] and body["running"] is None and not body["waiting_for_clock"]:
                runs: list[Any] = body["runs"]
                return runs
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service's loop did not finish by {at.isoformat()}")
            time.sleep(1.0)


def summarise(op: Operator, promises: dict[str, Any], s: Settings) -> dict[str, Any]:
    rows = [r.as_dict() for r in op.rows]
    runs = op.loop_runs
    trained = [r for r in runs if r["name"] == "retrain + gate" and r["error"] is None]
    promotions = [
        {"at": r["at"], "model": name, "version": r["detail"]["challengers"].get(name)}
        for r in trained
        for name, ok in r["detail"].get("promoted", {}).items()
        if ok
    ]
    steps: dict[str, list[float]] = {}
    for r in runs:
        for name, sec in (r["detail"].get("steps") or {}).items():
            steps.setdefault(name, []).append(sec)
    from serving.history_export import read_exported

    alloc = read_exported(s.raw_dir, "allocations")
    ships = read_exported(s.raw_dir, "shipments")
    labels = {
        "allocation_rows": len(alloc),
        "rejection_labels": int(alloc["rejected"].sum()) if len(alloc) else 0,
        "delivery_labels": len(ships),
    }
    overall = promises.get("overall") or {}
    return {
        "days": rows,
        "max_feature_age_hours": max((r["feature_age_hours_max"] for r in rows), default=None),
        "degraded_decisions": sum(r["degraded_decisions"] for r in rows),
        "challengers_trained": sum(len(r["detail"].get("challengers", {})) for r in trained),
        "promotions": promotions,
        "promise_coverage": overall.get("coverage"),
        "p50_mae_days": overall.get("p50_mae_days"),
        "promise_deliveries": overall.get("deliveries"),
        "widened_lanes": promises.get("widened_lanes"),
        "labels_from_api": labels,
        "loop_step_seconds": {
            k: {"runs": len(v), "mean": round(sum(v) / len(v), 2), "max": max(v)}
            for k, v in steps.items()
        },
        "pending_deliveries": len(op.pending),
    }


def operate(
    days: Annotated[int, typer.Option(min=1, max=365, help="Simulated days to play.")] = 14,
    url: Annotated[
        str | None,
        typer.Option(help="A running service (default: start one in process, simulated clock)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="ROUTECAST_API_KEY", help="Bearer key for --url.")
    ] = None,
    refresh_every: Annotated[
        str, typer.Option(help="Loop: export + features refresh period, simulated time.")
    ] = "1d",
    retrain_every: Annotated[
        str, typer.Option(help="Loop: retrain + gate period, simulated time; 'never' to skip.")
    ] = "7d",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Play the simulated world against the service over HTTP while the loop runs."""
    import httpx

    from serving.auth import SCOPES
    from serving.scheduler import Scheduler
    from serving.sim_clock import SimulatedClock

    s = settings()
    console.print("operate: replaying the demo world to the end of its history…")
    world = world_after_history(s)
    start = _sim_time(world.day, 0.0)
    local_clock = SimulatedClock(start) if url is None else None
    op_settings = s.model_copy(
        update={"snapshot_refresh_seconds": 2.0, "model_reload_seconds": 2.0}
    )
    sched = None
    if local_clock is not None:
        refresh = every(refresh_every, "--refresh-every") or timedelta(days=1)
        sched = Scheduler(
            op_settings,
            refresh_every=refresh,
            retrain_every=every(retrain_every, "--retrain-every"),
            clock=local_clock,
        )
        sched.start_at(start)  # the demo is fresh at the start

    @contextmanager
    def target() -> Iterator[tuple[str, str | None]]:
        if url is not None:
            yield url, api_key
            return
        assert local_clock is not None
        with in_process_service(op_settings, local_clock) as (base, runtime):
            yield base, runtime.keys.create(set(SCOPES), "operate")

    with (
        target() as (base, key),
        httpx.Client(
            base_url=base,
            timeout=120,
            headers={"Authorization": f"Bearer {key}"} if key else {},
        ) as http,
    ):
        clock: SimulatedClock | RemoteClock
        if local_clock is None:
            check_remote_clock(http, base)
            clock = RemoteClock(http)
            clock.set(start)
        else:
            clock = local_clock
        op = Operator(http, world, clock, sched)
        since = start.isoformat()
        for _ in range(days):
            t0 = time.perf_counter()
            row = op.play_day()
            op.rows.append(row)
            op.run_loop(date.fromisoformat(row.day), row)
            if row.loop:
                op.wait_for_reload(row)
            console.print(
                f"{row.day}: {row.orders} orders, rejection rate {row.rejection_rate:.3f}, "
                f"on time {row.on_time_rate}, feature age ≤ {row.feature_age_hours_max:.1f} h, "
                f"models {row.models}, loop {row.loop} ({time.perf_counter() - t0:.0f} s)",
                highlight=False,
                soft_wrap=True,
            )
            console.print(f"day-json {json.dumps(row.as_dict())}", highlight=False, soft_wrap=True)
        promises = http.get("/v1/promises/summary", params={"since": since}).json()
    out = summarise(op, promises, s)
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        console.print_json(json.dumps({k: v for k, v in out.items() if k != "days"}, default=str))
