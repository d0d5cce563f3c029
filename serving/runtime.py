"""Process-wide state of the API: models, feature snapshot, network and catalogue.

Everything here is rebuilt off the request path (start-up and a background refresher);
handlers only read the current references, which are swapped atomically.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from routing import Network, Node, Policy
from serving.audit_log import AuditLog
from serving.catalogue import Catalogue, SkuRecord
from serving.feature_snapshot import FeatureSnapshot
from serving.key_store import SqlKeyStore
from serving.ledger import Ledger, create_schema, make_engine
from serving.ledger.outbox import OutboxConfig
from serving.ledger_seed import seed_ledger
from serving.live_features import LiveFeatureFeed
from serving.model_store import ModelStore
from serving.policy_store import PolicyStore
from serving.promise_monitor import PromiseMonitor
from serving.settings import Settings
from serving.shadow import ShadowWorker
from serving.webhooks import Dispatcher

if TYPE_CHECKING:
    from features.online import OnlineSnapshot

log = logging.getLogger("routecast.runtime")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Steps:
    """Times start-up steps into ``into`` (name → seconds)."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = round(time.perf_counter() - t0, 3)


class Runtime:
    """The composition root: builds the narrow parts (models, feature snapshot, ledger, keys,
    policy, catalogue) and refreshes them off the request path; one instance per process.

    Routers take the part they need through ``serving.deps``; only the decision path, which
    reads most of them, takes the whole runtime.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        #: the service's time (a simulated world runs its own): decisions, ledger, features
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.models = ModelStore(
            settings.tracking_uri,
            {"stockout": settings.stockout_model, "delivery": settings.delivery_model},
            settings.model_alias,
            cache_dir=settings.home / "cache" / "models",
        )
        self.snapshot: FeatureSnapshot | None = None
        self.snapshot_error: str | None = None
        self.engine = make_engine(settings.ledger_url)
        self.ledger = Ledger(
            self.engine,
            max_rejections=settings.max_rejections,
            events=OutboxConfig(
                endpoints=tuple(e.name for e in settings.webhooks),
                low_stock_threshold=settings.low_stock_threshold,
            ),
            claim_stale_after=timedelta(seconds=settings.idempotency_claim_seconds),
            clock=self.clock,
        )
        self.dispatcher = Dispatcher.from_settings(self.ledger, settings)
        self.keys = SqlKeyStore(self.engine, cache_seconds=settings.api_key_cache_seconds)
        self.shadow = ShadowWorker(self.ledger)
        #: decision audit records, written in batches after the answers
        self.audits = AuditLog(self.ledger)
        self.policies = PolicyStore(settings.policy_file)
        self.catalogue = Catalogue(settings.raw_dir, self.ledger)
        self._store: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = datetime.now(UTC)
        self.promises = PromiseMonitor(
            self.ledger, settings, self.delivery_model_key, clock=self.clock
        )
        #: True until models and features have been loaded once (``/readyz`` answers 503)
        self.starting = True
        #: seconds each start-up step took, in order
        self.start_steps: dict[str, float] = {}
        self._loader: threading.Thread | None = None
        self.live = LiveFeatureFeed(
            self, interval_seconds=settings.live_features_seconds, clock=self.clock
        )

    # -- the parts' current values, for the decision path ---------------------------------
    @property
    def policy(self) -> Policy:
        return self.policies.policy

    @property
    def policy_error(self) -> str | None:
        return self.policies.error

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.catalogue.nodes

    @property
    def skus(self) -> dict[str, SkuRecord]:
        return self.catalogue.skus

    def network_for(self, skus: list[str]) -> Network:
        return self.catalogue.network_for(skus)

    def forget_capacity_counts(self) -> None:
        self.catalogue.forget_capacity_counts()

    def forget_stock(self, skus: Sequence[str]) -> None:
        self.catalogue.forget_stock(skus)

    def reload_nodes(self) -> None:
        self.catalogue.reload_nodes()

    def reload_policy(self) -> bool:
        return self.policies.reload()

    def delivery_model_key(self) -> str:
        """The serving delivery model as ``name/version`` (``none`` in cost mode): the key of
        the lanes' P90 widening."""
        name = self.settings.delivery_model
        version = self.models.versions().get(name)
        return f"{name}/{version}" if version else "none"

    def open_feature_store(self) -> Any:
        if self._store is None:
            from features.store import open_feature_store

            self._store = open_feature_store(self.settings)
        return self._store

    def _read_online(self) -> OnlineSnapshot:
        """The online store's rows for the catalogue's entities: a SQLite store is read
        directly (no Feast import, milliseconds), anything else through Feast."""
        cat = self.catalogue
        s = self.settings
        if s.online_store == "sqlite":
            from features.online_sqlite import UnsupportedEncoding, read_sqlite_snapshot

            try:
                return read_sqlite_snapshot(
                    s.feature_dir.resolve() / "online.db",
                    s.feast_project,
                    cat.node_ids,
                    cat.node_skus,
                    cat.lanes(),
                )
            except UnsupportedEncoding:
                log.warning("online store not readable directly; reading through Feast")
        from features.online import read_online_snapshot

        return read_online_snapshot(
            self.open_feature_store(), cat.node_ids, cat.node_skus, cat.lanes()
        )

    def refresh_features(self) -> None:
        """Read the online store into a new snapshot and rebuild the network's stock from it."""
        try:
            online = self._read_online()
            snap = FeatureSnapshot.from_online(
                online.node,
                online.node_sku,
                online.lane,
                newest_event=online.newest_event,
                oldest_event=online.oldest_event,
                read_at=online.read_at,
            ).carrying(self.snapshot)
        except Exception as exc:  # keep serving the last snapshot (or degrade) on failure
            self.snapshot_error = f"feature refresh failed: {exc}"
            log.exception("feature refresh failed")
            return
        self.snapshot = snap
        self.snapshot_error = None
        # the nodes' queues as their operations last reported them: routing prices the wait
        self.catalogue.set_backlog(snap.node_feature("backlog"))

    def refresh_models(self) -> None:
        try:
            self.models.refresh()
        except Exception:
            log.exception("model refresh failed")

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, background: bool = True) -> None:
        """Load what answers need. With ``background`` (the server), only the cheap core runs
        here (ledger, catalogue, nodes, cached models); MLflow, Feast and the refreshers load
        on a thread, and until they have ``starting`` keeps ``/readyz`` at 503 and decisions
        answer degraded (cost mode) with the reason. Without it, everything loads before
        returning (commands, tests, benchmarks)."""
        from serving.destinations import warm_in_background

        step = _Steps(self.start_steps)
        warm_in_background()  # orders look codes up one by one until the index is in
        with step("schema"):
            create_schema(self.engine)
        with step("catalogue"):
            self.catalogue.load()
            self.reload_policy()
        with step("ledger seed"):
            self._seed_ledger()
            self.reload_nodes()
        with step("cached models"):
            self.models.load_cached()
        self.shadow.start()
        self.live.prime()
        if not background:
            self._load(step)
            return
        self._loader = threading.Thread(
            target=self._load_then_refresh,
            args=(step,),
            kwargs={"ask_registry": not self.models.ready()},
            name="routecast-start",
            daemon=True,
        )
        self._loader.start()

    def _seed_ledger(self) -> None:
        """Seed a new ledger from the home's canonical tables, one server process at a time: a
        second worker must not see the nodes and serve before the first has loaded the stock."""
        raw = self.settings.raw_dir
        if not (raw / "nodes.parquet").exists():
            return
        import fcntl

        try:
            fh = open(raw / ".ledger-seed.lock", "a")  # noqa: SIM115 (closed below)
        except OSError:  # a read-only home: nothing else can seed it either
            seed_ledger(self.ledger, raw)
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                seed_ledger(self.ledger, raw)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _load(self, step: _Steps, *, ask_registry: bool = True) -> None:
        """Models through the registry (a no-op for versions the cache already loaded),
        features through the feature store, stale features brought forward.

        Without ``ask_registry`` (the server, when the cache held every champion the
        registry's alias names) MLflow is not imported here: importing it and asking the
        registry again takes seconds to tens of seconds, and the refresher's first tick asks
        a few seconds after ready."""
        with step("models"):
            if ask_registry or not self.models.ready():  # never skip it with a model missing
                self.refresh_models()
        with step("features"):
            self.refresh_features()
        if self.settings.bring_forward_stale_features:
            with step("bring forward"):
                try:
                    self.live.bring_forward_if_stale()
                except Exception:  # serve degraded rather than not at all
                    log.exception("bringing stale features forward failed")
        self.starting = False
        # What start-up loaded (modules, models, the feature snapshot, the catalogue) lives as
        # long as the process: keep it out of the cyclic collector's full passes, which
        # otherwise walk that whole heap again and again and showed in the decision p99.
        gc.freeze()
        log.info("started", extra={"steps": dict(self.start_steps)})

    def _load_then_refresh(self, step: _Steps, *, ask_registry: bool = True) -> None:
        try:
            self._load(step, ask_registry=ask_registry)
        except Exception:
            log.exception("start-up load failed; the refresher keeps trying")
            self.starting = False  # readiness reports what is missing from here on
        if self._stop.is_set():
            return
        self.dispatcher.start(self.settings.webhook_poll_seconds)
        self._thread = threading.Thread(target=self._loop, name="routecast-refresh", daemon=True)
        self._thread.start()
        if self.settings.live_features_seconds > 0:
            self.live.start()

    def _loop(self) -> None:
        s = self.settings
        next_models = next_features = 0.0
        clock = 0.0
        tick = min(s.model_reload_seconds, s.snapshot_refresh_seconds, 5.0)
        while not self._stop.wait(tick):
            clock += tick
            self.reload_policy()
            try:
                expired = self.ledger.expire_holds()
                if expired:
                    log.info("holds expired, stock released: %s", expired)
            except Exception:
                log.exception("expiring holds failed")
            try:
                self.promises.publish_if_dirty()
            except Exception:
                log.exception("promise gauges failed")
            if clock >= next_models:
                self.refresh_models()
                next_models = clock + s.model_reload_seconds
            if clock >= next_features:
                self.refresh_features()
                self.reload_nodes()
                next_features = clock + s.snapshot_refresh_seconds

    def stop(self) -> None:
        self._stop.set()
        if self._loader is not None:
            self._loader.join(timeout=30)
        self.live.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.shadow.stop()
        self.audits.stop()
        self.dispatcher.stop()
        self.engine.dispose()

    # -- status ----------------------------------------------------------------------------
    def readiness(self, now: datetime) -> tuple[bool, list[str]]:
        """(can serve, reasons). The database and nodes decide serving; models and features
        only degrade answers (cost mode), and a failing feature or model refresh is reported
        even while the last snapshot or the loaded champion still serves."""
        reasons = self.degraded_reasons(now)
        if self.snapshot is not None and self.snapshot_error:
            reasons.append(self.snapshot_error)
        reasons += [
            f"model {role} refresh failed (the loaded version keeps serving): {err}"
            for role, err in self.models.errors().items()
            if self.models.get(role) is not None
        ]
        serving = bool(self.nodes) and not self.starting
        if self.starting:
            reasons.append("starting: models and features are loading")
        elif not self.nodes:
            reasons.append("no fulfilment nodes loaded")
        try:
            self.ledger.ping()
        except Exception as exc:
            sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
            reasons.append(
                f"database unavailable ({type(exc).__name__}"
                + (f", SQLSTATE {sqlstate})" if sqlstate else ")")
            )
            serving = False
        return serving, reasons

    def degraded_reasons(self, now: datetime) -> list[str]:
        """Why answers fall back to cost mode. A registry that fails while a model is loaded
        does not count: the loaded champion keeps serving (``readiness`` reports it)."""
        reasons = [
            f"model {role}: {err}"
            for role, err in self.models.errors().items()
            if self.models.get(role) is None
        ]
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
