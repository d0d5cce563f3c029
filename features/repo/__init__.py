"""The Feast repository: entities, sources, feature views, on-demand views and feature services.

Sources point at parquet files inside the work directory, so definitions are built by
functions taking that directory instead of living as module globals.
"""

from __future__ import annotations

from pathlib import Path

from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView

from features.repo.entities import all_entities
from features.repo.on_demand import node_distance_view
from features.repo.services import feature_services
from features.repo.sources import file_sources, with_push_sources
from features.repo.views import feature_views

FeastObject = Entity | FeatureView | OnDemandFeatureView | FeatureService


def build_definitions(feature_dir: Path) -> list[FeastObject]:
    """Every object of the repo, wired to the parquet tables in ``feature_dir``."""
    views = feature_views(with_push_sources(file_sources(feature_dir)))
    distance = node_distance_view(views)
    services = feature_services(views, distance)
    return [*all_entities(), *views.values(), distance, *services]


__all__ = ["FeastObject", "build_definitions"]
