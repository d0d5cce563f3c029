"""Process-wide state of the API: models, feature snapshot, network and catalogue.

Everything here is rebuilt off the request path (start-up and a background refresher);
handlers only read the current references, which are swapped atomically.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from routing import (
    Closure,
    Network,
    Node,
    NodeCalendar,
    Policy,
    StockRow,
    calendar_from_dict,
    policy_from_dict,
)
from serving.feature_snapshot import FeatureSnapshot
from serving.key_store import SqlKeyStore
from serving.ledger import Ledger, NodeRecord, create_schema, make_engine
from serving.ledger_seed import seed_ledger
from serving.model_store import ModelStore
from serving.settings import Settings
from serving.shadow import ShadowWorker

log = logging.getLogger("routecast.runtime")

US_REGIONS = [
    "AL",
    "AK",
    "AZ",
    "AR",
    "CA",
    "CO",
    "CT",
    "DE",
    "DC",
    "FL",
    "GA",
    "HI",
    "ID",
    "IL",
    "IN",
    "IA",
    "KS",
    "KY",
    "LA",
    "ME",
    "MD",
    "MA",
    "MI",
    "MN",
    "MS",
    "MO",
    "MT",
    "NE",
    "NV",
    "NH",
    "NJ",
    "NM",
    "NY",
    "NC",
    "ND",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VT",
    "VA",
    "WA",
    "WV",
    "WI",
    "WY",
    "PR",
]


@dataclass(frozen=True, slots=True)
class SkuRecord:
    sku: str
    product_group: str
    weight_kg: float
    price: float


class Runtime:
    """Owns the refreshable state; one instance per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models = ModelStore(
            settings.tracking_uri,
            {"stockout": settings.stockout_model, "delivery": settings.delivery_model},
            settings.model_alias,
        )
        self.snapshot: FeatureSnapshot | None = None
        self.snapshot_error: str | None = None
        self.engine = make_engine(settings.ledger_url)
        self.ledger = Ledger(self.engine, max_rejections=settings.max_rejections)
        self.keys = SqlKeyStore(self.engine)
        self.shadow = ShadowWorker(self.ledger)
        self.nodes: tuple[Node, ...] = ()
        self.policy: Policy = Policy.default()
        self.policy_error: str | None = None
        self._policy_mtime: float | None = None
        self._orders_today: dict[str, int] = {}
        self._orders_today_at = 0.0
        self.skus: dict[str, SkuRecord] = {}
        self._catalogue_nodes: dict[str, tuple[frozenset[str] | None, float]] = {}
        self._node_skus: list[tuple[str, str]] = []
        self._store: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = datetime.now(UTC)

    # -- loading ---------------------------------------------------------------------------
    def load_catalogue(self) -> None:
        raw = self.settings.raw_dir
        if not (raw / "nodes.parquet").exists():
            raise FileNotFoundError(
                f"no network under {raw}: run `routecast demo` (or `make run`) first"
            )
        nodes = pd.read_parquet(raw / "nodes.parquet")
        skus = pd.read_parquet(raw / "skus.parquet")
        self.skus = {
            str(r["sku"]).upper(): SkuRecord(
                str(r["sku"]), str(r["product_group"]), float(r["weight_kg"]), float(r["price"])
            )
            for r in skus.to_dict(orient="records")
        }
        # Catalogue attributes the ledger does not hold; operational state comes from the ledger.
        self._catalogue_nodes = {
            str(r["node_id"]): (
                frozenset(g for g in str(r["ships_groups"]).split(",") if g) or None,
                float(r["handling_cost"]),
            )
            for r in nodes.to_dict(orient="records")
        }
        inv = pd.read_parquet(raw / "inventory_snapshots.parquet", columns=["node_id", "sku"])
        pairs = inv.drop_duplicates()
        self._node_skus = list(
            zip(pairs["node_id"].astype(str), pairs["sku"].astype(str), strict=True)
        )

    def open_feature_store(self) -> Any:
        if self._store is None:
            from features.store import open_feature_store

            self._store = open_feature_store(self.settings)
        return self._store

    def refresh_features(self) -> None:
        """Read the online store into a new snapshot and rebuild the network's stock from it."""
        from features.online import read_online_snapshot

        try:
            store = self.open_feature_store()
            node_ids = list(self._catalogue_nodes)
            lanes = [(n, r) for n in node_ids for r in US_REGIONS]
            online = read_online_snapshot(store, node_ids, self._node_skus, lanes)
            snap = FeatureSnapshot.from_online(
                online.node,
                online.node_sku,
                online.lane,
                newest_event=online.newest_event,
                oldest_event=online.oldest_event,
                read_at=online.read_at,
            )
        except Exception as exc:  # keep serving the last snapshot (or degrade) on failure
            self.snapshot_error = f"feature refresh failed: {exc}"
            log.exception("feature refresh failed")
            return
        self.snapshot = snap
        self.snapshot_error = None

    def refresh_models(self) -> None:
        try:
            self.models.refresh()
        except Exception:
            log.exception("model refresh failed")

    # -- policy ---------------------------------------------------------------------------
    def reload_policy(self) -> bool:
        """(Re)load the policy file when it changed; a bad file keeps the last good policy."""
        import yaml

        path = self.settings.policy_file
        if path is None:
            return False
        try:
            mtime = path.stat().st_mtime
            if mtime == self._policy_mtime:
                return False
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            self.policy = policy_from_dict(doc)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            self.policy_error = f"policy {path}: {exc}; still using version {self.policy.version}"
            log.error(self.policy_error)
            return False
        self._policy_mtime = mtime
        self.policy_error = None
        log.info("policy %s loaded from %s", self.policy.version, path)
        return True

    # -- network from the ledger ---------------------------------------------------------
    def reload_nodes(self) -> None:
        """Merge the ledger's operational node state (enabled, calendar, capacity, closures)
        with catalogue attributes (type, groups, handling cost) into routing nodes."""
        built = []
        for rec in self.ledger.nodes():
            groups, handling = self._catalogue_nodes.get(rec.node_id, (None, 0.0))
            built.append(
                Node(
                    node_id=rec.node_id,
                    node_type=rec.node_type,
                    lat=rec.lat,
                    lon=rec.lon,
                    enabled=rec.enabled,
                    priority=rec.priority,
                    ships_groups=groups,
                    handling_cost=handling,
                    timezone=rec.timezone,
                    daily_capacity=rec.daily_capacity or None,
                    calendar=node_calendar(rec),
                )
            )
        self.nodes = tuple(sorted(built, key=lambda n: n.node_id))

    def _capacity_counts(self) -> dict[str, int]:
        """Orders taken per node today, re-read at most every two seconds."""
        now = time.monotonic()
        if now - self._orders_today_at > 2.0:
            self._orders_today = self.ledger.orders_per_node_since(
                datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            )
            self._orders_today_at = now
        return self._orders_today

    def network_for(self, skus: list[str]) -> Network:
        """Nodes plus live availability of just these SKUs, read from the ledger."""
        counts = self._capacity_counts()
        nodes = [
            replace(n, orders_today=counts.get(n.node_id, 0)) if n.node_id in counts else n
            for n in self.nodes
        ]
        known = {n.node_id for n in nodes}
        stock = [
            StockRow(lvl.node_id, lvl.sku, float(lvl.available), lvl.available > 0)
            for lvl in self.ledger.availability(skus)
            if lvl.node_id in known
        ]
        return Network(nodes, stock)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        from serving.destinations import zip_index

        zip_index()  # build the postal-code index now, not on the first order
        create_schema(self.engine)
        self.load_catalogue()
        self.reload_policy()
        seed_ledger(self.ledger, self.settings.raw_dir)
        self.reload_nodes()
        self.refresh_models()
        self.refresh_features()
        self.shadow.start()
        if background:
            self._thread = threading.Thread(
                target=self._loop, name="routecast-refresh", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        s = self.settings
        next_models = next_features = 0.0
        clock = 0.0
        tick = min(s.model_reload_seconds, s.snapshot_refresh_seconds, 5.0)
        while not self._stop.wait(tick):
            clock += tick
            self.reload_policy()
            if clock >= next_models:
                self.refresh_models()
                next_models = clock + s.model_reload_seconds
            if clock >= next_features:
                self.refresh_features()
                self.reload_nodes()
                next_features = clock + s.snapshot_refresh_seconds

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.shadow.stop()
        self.engine.dispose()

    # -- status ----------------------------------------------------------------------------
    def degraded_reasons(self, now: datetime) -> list[str]:
        reasons = [f"model {role}: {err}" for role, err in self.models.errors().items()]
        if not self.models.ready() and not reasons:
            reasons.append("models not loaded")
        if self.snapshot is None:
            reasons.append(self.snapshot_error or "no feature snapshot")
        else:
            age = self.snapshot.age_hours(now)
            if age is None or age > self.settings.feature_staleness_hours:
                reasons.append(
                    f"features are {age if age is None else round(age, 1)} h old "
                    f"(bound {self.settings.feature_staleness_hours} h): run `routecast features materialize`"
                )
        return reasons


def node_calendar(rec: NodeRecord) -> NodeCalendar | None:
    """The routing calendar of a ledger node: its stored calendar plus any closure the
    ledger set after a capacity rejection (closed for the rest of the local day)."""
    doc = rec.calendar[0] if rec.calendar else None
    cal = calendar_from_dict(doc) if doc else None
    if rec.closed_until is None or rec.closed_until <= datetime.now(UTC):
        return cal
    closure = Closure(datetime.now(UTC), rec.closed_until, "rejected for capacity")
    if cal is None:
        return NodeCalendar(closures=(closure,))
    return replace(cal, closures=(*cal.closures, closure))
