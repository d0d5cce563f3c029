"""Opening, applying, materialising and reading the routecast Feast store.

Everything lives in one feature directory: the daily parquet tables, ``feature_store.yaml``,
the file registry and (for SQLite) the online database, so ``feast -c <feature_dir> ...``
works on the same store as the Python API.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import pandas as pd
import pyarrow.parquet as pq
import yaml
from feast import FeatureStore, FeatureView, FileSource, PushSource

from features.progress import quiet_feast, stage
from features.repo import build_definitions
from features.repo.sources import BATCH_VIEWS, table_path
from features.training_frame import training_frame

__all__ = [
    "apply_definitions",
    "history_start",
    "materialize",
    "open_feature_store",
    "open_store",
    "redis_connection_string",
    "teardown",
    "training_frame",
]

log = logging.getLogger("routecast.features")


def _online_config(feature_dir: Path, online: str, redis_url: str) -> dict[str, Any]:
    if online == "sqlite":
        return {"type": "sqlite", "path": str(feature_dir / "online.db")}
    if online == "redis":
        return {"type": "redis", "connection_string": redis_connection_string(redis_url)}
    raise ValueError(f"online store must be 'sqlite' or 'redis', got {online!r}")


def redis_connection_string(redis_url: str) -> str:
    """Feast's ``host:port,db=N`` form from either that form or a ``redis://host:port/N`` URL."""
    if "://" not in redis_url:
        return redis_url if ",db=" in redis_url else f"{redis_url},db=0"
    url = urlparse(redis_url)
    db = (url.path or "/0").lstrip("/") or "0"
    parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", f"db={db}"]
    if url.password:
        parts.append(f"password={url.password}")
    if url.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def open_store(
    feature_dir: Path,
    *,
    online: Literal["sqlite", "redis"] = "sqlite",
    redis_url: str = "127.0.0.1:6379",
    project: str = "routecast",
) -> FeatureStore:
    """Write ``feature_store.yaml`` into ``feature_dir`` and open the store it describes.

    Redis keys end with the project name, so distinct projects share one Redis safely.
    """
    feature_dir = feature_dir.resolve()
    feature_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(feature_dir / "registry.db"),
            "cache_ttl_seconds": 60,
        },
        "offline_store": {"type": "file"},
        "online_store": _online_config(feature_dir, online, redis_url),
        "entity_key_serialization_version": 3,
    }
    (feature_dir / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with quiet_feast(True):
        return FeatureStore(repo_path=str(feature_dir))


class StoreSettings(Protocol):
    """Where the store lives: satisfied by the service settings, without importing them."""

    @property
    def feature_dir(self) -> Path: ...
    @property
    def online_store(self) -> Literal["sqlite", "redis"]: ...
    @property
    def redis_url(self) -> str: ...
    @property
    def feast_project(self) -> str: ...


def open_feature_store(settings: StoreSettings) -> FeatureStore:
    """The store the service, training and the CLI share, as configured in the settings."""
    return open_store(
        settings.feature_dir,
        online=settings.online_store,
        redis_url=settings.redis_url,  # open_store understands redis://host:port/db
        project=settings.feast_project,
    )


def apply_definitions(store: FeatureStore, feature_dir: Path) -> list[str]:
    """Register every entity, view and service (idempotent); returns the names applied."""
    missing = [
        str(table_path(feature_dir, v))
        for v in BATCH_VIEWS
        if not table_path(feature_dir, v).exists()
    ]
    if missing:
        raise FileNotFoundError(
            "feature tables missing (run features.compute.build_feature_tables first): "
            + ", ".join(missing)
        )
    objects = build_definitions(feature_dir)
    with quiet_feast(True):
        store.apply(objects)  # type: ignore[arg-type]
    return [obj.name for obj in objects]


def _batch_views(store: FeatureStore) -> list[FeatureView]:
    return [v for v in store.list_feature_views() if v.name in BATCH_VIEWS]


def history_start(store: FeatureStore) -> datetime:
    """Earliest event timestamp over the applied views' parquet tables (reads only that column)."""
    starts: list[datetime] = []
    for view in _batch_views(store):
        source = view.batch_source
        if not isinstance(source, FileSource):
            raise TypeError(f"{view.name} is not backed by a parquet FileSource")
        column = pq.read_table(source.path, columns=["event_timestamp"]).column("event_timestamp")
        if len(column):
            starts.append(pd.Timestamp(column.to_pandas().min()).to_pydatetime())
    if not starts:
        raise ValueError("no feature rows to materialise: all feature tables are empty")
    return min(starts)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def materialize(
    store: FeatureStore,
    end: datetime | None = None,
    *,
    start: datetime | None = None,
    progress: bool = False,
    reload: timedelta | None = None,
) -> None:
    """Load feature rows into the online store up to ``end`` (UTC; default now: a caller on a
    simulated clock passes its own time, which may be ahead of the wall clock).

    With ``start`` the interval is explicit. Otherwise the first run covers the whole
    history (so entities whose last row is old still get their latest values) and later runs
    continue from where the previous one ended (``materialize_incremental``). With
    ``reload`` the batch-only views start that much before ``end`` instead, so rows
    recomputed for days already loaded (a refresh from newly exported history) replace the
    old ones; the pushed node×SKU view stays incremental, so an older close row never
    replaces a live one the ledger pushed since.
    """
    end_utc = datetime.now(UTC) if end is None else _utc(end)
    views = _batch_views(store)
    if not views:
        raise ValueError("no feature views applied; call apply_definitions first")
    first_run = any(v.most_recent_end_time is None for v in views)
    if start is None and reload is not None and not first_run:
        batch_only = [v.name for v in views if not isinstance(v.stream_source, PushSource)]
        pushed = [v.name for v in views if isinstance(v.stream_source, PushSource)]
        start_utc = end_utc - reload
        with (
            stage(f"materialize {start_utc:%Y-%m-%d} → {end_utc:%Y-%m-%d %H:%M}", progress),
            quiet_feast(not progress),
        ):
            store.materialize(start_date=start_utc, end_date=end_utc, feature_views=batch_only)
            if pushed:
                store.materialize_incremental(end_date=end_utc, feature_views=pushed)
        return
    if start is not None:
        start_utc = _utc(start)
        with (
            stage(f"materialize {start_utc:%Y-%m-%d} → {end_utc:%Y-%m-%d %H:%M}", progress),
            quiet_feast(not progress),
        ):
            store.materialize(start_date=start_utc, end_date=end_utc)
        return
    if first_run:
        start_utc = _utc(history_start(store))
        with (
            stage(
                f"materialize full history {start_utc:%Y-%m-%d} → {end_utc:%Y-%m-%d %H:%M}",
                progress,
            ),
            quiet_feast(not progress),
        ):
            store.materialize(start_date=start_utc, end_date=end_utc)
        return
    with (
        stage(f"materialize incrementally → {end_utc:%Y-%m-%d %H:%M}", progress),
        quiet_feast(not progress),
    ):
        store.materialize_incremental(end_date=end_utc)


def teardown(store: FeatureStore) -> None:
    """Drop the project's online tables or Redis keys and its registry entries."""
    with quiet_feast(True):
        store.teardown()
