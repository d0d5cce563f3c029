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
decisions, ledger, features and promises all live on simulated time. ``--url`` targets a
running service instead; it keeps its own (wall) clock and runs its own loop
(``routecast serve --refresh-every``), so promise and label timing follow its clock.
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
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from serving.cli.common import console, settings
from serving.cli.loop import every
from serving.settings import Settings

#: hours (UTC) of the simulated day when the books are sent and when the day is closed
MORNING_HOUR, CLOSE_HOUR = 5.0, 23.0
REASON = "not_in_stock"


class SimClock:
    """The simulated time the in-process service reads; it only moves forward."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> datetime:
        with self._lock:
            self._now = max(self._now, at)
            return self._now


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
    feature_age_hours_max: float = 0.0
    oldest_feature_age_hours_max: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    loop: dict[str, float] = field(default_factory=dict)

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
            "feature_age_hours_max": round(self.feature_age_hours_max, 2),
            "oldest_feature_age_hours_max": round(self.oldest_feature_age_hours_max, 2),
            "models": self.models,
            "loop_seconds": self.loop,
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
def in_process_service(s: Settings, clock: SimClock) -> Iterator[tuple[str, Any]]:
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
        self, http: Any, world: Any, clock: SimClock | None, scheduler: Any | None
    ) -> None:
        self.http = http
        self.world = world
        self.clock = clock
        self.scheduler = scheduler
        self.pending: list[tuple[datetime, str, str]] = []  # (delivered_at, order, shipment)
        self.promises: dict[str, dict[str, Any]] = {}
        self.rows: list[DayRow] = []
        self.first_day = True

    # -- helpers ------------------------------------------------------------------------
    def _at(self, day: date, hour: float) -> datetime:
        at = _sim_time(day, hour)
        return self.clock.set(at) if self.clock is not None else at

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

    def _feature_age(self, row: DayRow) -> None:
        body = self.http.get("/readyz").json()
        now = datetime.fromisoformat(body["now"])
        for key, attr in (
            ("features_newest_event", "feature_age_hours_max"),
            ("features_oldest_event", "oldest_feature_age_hours_max"),
        ):
            if body.get(key):
                age = (now - datetime.fromisoformat(body[key])).total_seconds() / 3600.0
                setattr(row, attr, max(getattr(row, attr), age))

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
        self._feature_age(row)

        lines = orders.lines
        by_order: dict[int, list[int]] = {}
        for li in np.argsort(lines.hour, kind="stable"):
            by_order.setdefault(int(lines.order[li]), []).append(int(li))
        placed: list[str] = []
        for o, idx in sorted(by_order.items(), key=lambda kv: float(lines.hour[kv[1][0]])):
            if self._play_order(orders, o, idx, row):
                placed.append(orders.order_ids[o])
            if row.orders % 100 == 0:
                self._feature_age(row)
        self._feature_age(row)

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
        if self.clock is not None and due:
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
        """The loop's steps due at the start of the next simulated day."""
        if self.scheduler is None:
            return
        at = self._at(day + timedelta(days=1), 0.25)
        for run in self.scheduler.tick(at):
            row.loop[run.name] = run.seconds
            if run.error:
                console.print(f"[red]loop {run.name} failed: {run.error}[/red]")


def summarise(
    op: Operator, promises: dict[str, Any], scheduler: Any | None, s: Settings | None
) -> dict[str, Any]:
    rows = [r.as_dict() for r in op.rows]
    runs = scheduler.runs if scheduler is not None else []
    trained = [r for r in runs if r.name == "retrain + gate" and r.error is None]
    promotions = [
        {"at": r.at.isoformat(), "model": name, "version": r.detail["challengers"].get(name)}
        for r in trained
        for name, ok in r.detail.get("promoted", {}).items()
        if ok
    ]
    steps: dict[str, list[float]] = {}
    for r in runs:
        for name, sec in (r.detail.get("steps") or {}).items():
            steps.setdefault(name, []).append(sec)
    labels: dict[str, int] = {}
    if s is not None:
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
        "challengers_trained": sum(len(r.detail.get("challengers", {})) for r in trained),
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

    s = settings()
    console.print("operate: replaying the demo world to the end of its history…")
    world = world_after_history(s)
    start = _sim_time(world.day, 0.0)
    clock = SimClock(start) if url is None else None
    op_settings = s.model_copy(
        update={"snapshot_refresh_seconds": 2.0, "model_reload_seconds": 2.0}
    )
    sched = None
    if url is None:
        refresh = every(refresh_every, "--refresh-every") or timedelta(days=1)
        sched = Scheduler(
            op_settings,
            refresh_every=refresh,
            retrain_every=every(retrain_every, "--retrain-every"),
            clock=clock or (lambda: datetime.now(UTC)),
        )
        sched.last = dict.fromkeys(sched.every, start)  # the demo is fresh at the start

    @contextmanager
    def target() -> Iterator[tuple[str, str | None]]:
        if url is not None:
            yield url, api_key
            return
        assert clock is not None
        with in_process_service(op_settings, clock) as (base, runtime):
            yield base, runtime.keys.create(set(SCOPES), "operate")

    with (
        target() as (base, key),
        httpx.Client(
            base_url=base,
            timeout=120,
            headers={"Authorization": f"Bearer {key}"} if key else {},
        ) as http,
    ):
        op = Operator(http, world, clock, sched)
        since = start.isoformat()
        for _ in range(days):
            t0 = time.perf_counter()
            row = op.play_day()
            op.rows.append(row)
            op.run_loop(date.fromisoformat(row.day), row)
            if row.loop:
                time.sleep(3)  # the service re-reads features and the registry every 2 s
            console.print(
                f"{row.day}: {row.orders} orders, rejection rate {row.rejection_rate:.3f}, "
                f"on time {row.on_time_rate}, feature age ≤ {row.feature_age_hours_max:.1f} h, "
                f"models {row.models}, loop {row.loop} ({time.perf_counter() - t0:.0f} s)",
                highlight=False,
                soft_wrap=True,
            )
            console.print(f"day-json {json.dumps(row.as_dict())}", highlight=False, soft_wrap=True)
        promises = http.get("/v1/promises/summary", params={"since": since}).json()
    out = summarise(op, promises, sched, s if url is None else None)
    if as_json:
        print(json.dumps(out, indent=2, default=str))
    else:
        console.print_json(json.dumps({k: v for k, v in out.items() if k != "days"}, default=str))
