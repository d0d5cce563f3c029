"""Process-wide state of the API: models, feature snapshot, network and catalogue.

Everything here is rebuilt off the request path (start-up and a background refresher);
handlers only read the current references, which are swapped atomically.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from routing import Network, network_from_dict
from serving.feature_snapshot import FeatureSnapshot
from serving.model_store import ModelStore
from serving.settings import Settings

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
        self.network: Network | None = None
        self.skus: dict[str, SkuRecord] = {}
        self._nodes: list[dict[str, Any]] = []
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
        self._nodes = [
            {
                "id": str(r["node_id"]),
                "type": str(r["node_type"]),
                "enabled": bool(r["enabled"]),
                "priority": int(r["priority"]),
                "lat": float(r["lat"]),
                "lon": float(r["lon"]),
                "timezone": str(r["timezone"]),
                "handling_cost": float(r["handling_cost"]),
                "daily_capacity": int(r["daily_capacity"]),
                "ships_groups": [g for g in str(r["ships_groups"]).split(",") if g],
            }
            for r in nodes.to_dict(orient="records")
        ]
        inv = pd.read_parquet(raw / "inventory_snapshots.parquet", columns=["node_id", "sku"])
        pairs = inv.drop_duplicates()
        self._node_skus = list(
            zip(pairs["node_id"].astype(str), pairs["sku"].astype(str), strict=True)
        )

    def open_feature_store(self) -> Any:
        if self._store is None:
            from features.store import open_store

            s = self.settings
            self._store = open_store(
                s.feature_dir,
                online=s.online_store,
                redis_url=s.redis_url.removeprefix("redis://").split("/")[0],
                project=s.feast_project,
            )
        return self._store

    def refresh_features(self) -> None:
        """Read the online store into a new snapshot and rebuild the network's stock from it."""
        from features.online import read_online_snapshot

        try:
            store = self.open_feature_store()
            node_ids = [n["id"] for n in self._nodes]
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
        stock = [
            {"node": node, "sku": sku, "qty": max(qty, 0.0), "in_stock": qty > 0}
            for (node, sku), qty in snap.on_hand().items()
        ]
        self.network = network_from_dict({"nodes": self._nodes, "stock": stock})
        self.snapshot = snap
        self.snapshot_error = None

    def refresh_models(self) -> None:
        try:
            self.models.refresh()
        except Exception:
            log.exception("model refresh failed")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        from serving.destinations import zip_index

        zip_index()  # build the postal-code index now, not on the first order
        self.load_catalogue()
        self.refresh_models()
        self.refresh_features()
        if self.network is None:  # no features yet: route on the catalogue alone, degraded
            self.network = network_from_dict({"nodes": self._nodes, "stock": []})
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
            if clock >= next_models:
                self.refresh_models()
                next_models = clock + s.model_reload_seconds
            if clock >= next_features:
                self.refresh_features()
                next_features = clock + s.snapshot_refresh_seconds

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

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
