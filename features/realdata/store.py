"""Open a Feast repository in a work directory and read point-in-time training frames.

Registry and online store are local files beside the parquet tables, so an evaluation run
is self-contained and leaves nothing in the project tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from feast import FeatureStore, RepoConfig

TABLES_DIR = "tables"


def open_store(work_dir: Path, project: str) -> FeatureStore:
    """A local-provider store: file offline store, SQLite online store, file registry.

    Paths are made absolute: Feast resolves a relative registry path against ``repo_path``,
    so a relative ``--work-dir`` would otherwise point inside itself.
    """
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=project,
        provider="local",
        registry=str(work_dir / "registry.db"),
        offline_store={"type": "file"},
        online_store={"type": "sqlite", "path": str(work_dir / "online.db")},
        entity_key_serialization_version=3,
        repo_path=work_dir,
    )
    return FeatureStore(config=config)


def write_tables(work_dir: Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write each feature table as ``<work_dir>/tables/<name>.parquet`` for a FileSource."""
    out = work_dir / TABLES_DIR
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in tables.items():
        path = out / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths[name] = path
    return paths


def apply(store: FeatureStore, objects: Sequence[Any]) -> list[str]:
    """``feast apply`` the given entities, views and services; returns their names."""
    store.apply(list(objects))
    return [str(getattr(o, "name", o)) for o in objects]


def historical(
    store: FeatureStore, entities: pd.DataFrame, service: str, *, chunk_rows: int = 4000
) -> pd.DataFrame:
    """Point-in-time join of ``entities`` with every feature of ``service``.

    Feast's file offline store merges each view on its join keys before filtering by time,
    so memory grows with entity rows × feature rows per key; chunks bound it. Rows come
    back in the entity frame's order (Feast reorders; ``_row`` restores it).
    """
    entity_df = entities.reset_index(drop=True).assign(_row=range(len(entities)))
    # Feast keeps one row per (join keys, timestamp); nanosecond offsets keep every row.
    offset = entity_df.groupby("event_timestamp").cumcount()
    entity_df["event_timestamp"] = entity_df["event_timestamp"] + pd.to_timedelta(offset, "ns")
    features = store.get_feature_service(service)
    parts = [
        store.get_historical_features(
            entity_df=entity_df.iloc[start : start + chunk_rows], features=features
        ).to_df()
        for start in range(0, len(entity_df), chunk_rows)
    ]
    frame = pd.concat(parts, ignore_index=True) if parts else entity_df.iloc[:0]
    if len(frame) != len(entity_df):
        raise ValueError(
            f"Feast returned {len(frame)} rows for {len(entity_df)} entities: a view lacks a "
            "row at or before some entity time (give each key an early sentinel row)"
        )
    frame = frame.sort_values("_row").drop(columns="_row").reset_index(drop=True)
    frame["event_timestamp"] = entities["event_timestamp"].to_numpy()
    return frame
