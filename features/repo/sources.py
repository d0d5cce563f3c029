"""Parquet file sources, one per feature view, inside the work directory's feature folder."""

from __future__ import annotations

from pathlib import Path

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from features import catalog

BATCH_VIEWS = (
    catalog.VIEW_NODE_PROFILE,
    catalog.VIEW_NODE_OPS,
    catalog.VIEW_NODE_SKU_INVENTORY,
    catalog.VIEW_LANE_PERFORMANCE,
)


def table_path(feature_dir: Path, view: str) -> Path:
    """Where ``features.compute.build_feature_tables(raw, feature_dir)`` writes a view's table."""
    return feature_dir.resolve() / f"{view}.parquet"


def file_sources(feature_dir: Path) -> dict[str, FileSource]:
    """View name → FileSource over its daily table (``event_timestamp`` is the UTC event time)."""
    return {
        view: FileSource(
            name=f"{view}_source",
            path=str(table_path(feature_dir, view)),
            file_format=ParquetFormat(),
            timestamp_field="event_timestamp",
            description=f"Daily {view} features computed by features.compute.",
        )
        for view in BATCH_VIEWS
    }


#: Push source of the node×SKU inventory view: the ledger's live stock, pushed as it moves.
NODE_SKU_PUSH = f"{catalog.VIEW_NODE_SKU_INVENTORY}_push"


def with_push_sources(sources: dict[str, FileSource]) -> dict[str, FileSource | PushSource]:
    """The node×SKU view reads a PushSource (its batch source stays the daily parquet table),
    so ``FeatureStore.push`` updates it online between daily materialisations."""
    out: dict[str, FileSource | PushSource] = dict(sources)
    out[catalog.VIEW_NODE_SKU_INVENTORY] = PushSource(
        name=NODE_SKU_PUSH,
        batch_source=sources[catalog.VIEW_NODE_SKU_INVENTORY],
        description="Live on-hand and count age per node and SKU from the inventory ledger.",
    )
    return out
