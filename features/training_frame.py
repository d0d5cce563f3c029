"""Point-in-time training frames from the offline store, in catalogue feature names.

Feast's file offline store has two traits this module works around: within one call it
de-duplicates entity rows sharing join keys and timestamp, and it drops an entity row
entirely when one view has rows for its key but none inside the TTL (for example a lane
that has not had a delivery yet). So each feature view is fetched in its own call, on the
unique (timestamp, join keys) lookups of that view, and joined back; the on-demand distance
is then computed with the registered on-demand view's own transformation, row by row.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from feast import FeatureStore

from features import catalog
from features.progress import quiet_feast
from features.repo.services import stored_features

#: Entity-frame columns each feature service needs (labels and other columns pass through).
ENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    catalog.SERVICE_STOCKOUT: ("event_timestamp", "node_id", "sku", "qty"),
    catalog.SERVICE_DELIVERY: (
        "event_timestamp",
        "node_id",
        "dest_region",
        "dest_lat",
        "dest_lon",
        "weekday",
    ),
}
_LOOKUP = "__rc_lookup"
_DISTANCE_INPUTS = ("node_lat", "node_lon")


def _check(entity_df: pd.DataFrame, service: str) -> None:
    if service not in ENTITY_COLUMNS:
        raise KeyError(
            f"unknown feature service {service!r}; expected one of {sorted(ENTITY_COLUMNS)}"
        )
    missing = [c for c in ENTITY_COLUMNS[service] if c not in entity_df.columns]
    if missing:
        raise ValueError(f"entity frame for {service} lacks columns {missing}")
    clash = [c for c in stored_features(service) if c in entity_df.columns]
    if clash:
        raise ValueError(f"entity frame already holds feature columns {clash}")


def _view_requests(store: FeatureStore, service: str) -> tuple[dict[str, list[str]], bool]:
    """View name → features to fetch, and whether the on-demand distance is wanted."""
    requests: dict[str, list[str]] = {}
    wants_distance = False
    for projection in store.get_feature_service(service).feature_view_projections:
        names = [f.name for f in projection.features]
        if projection.name == catalog.VIEW_DISTANCE:
            wants_distance = True
        else:
            requests.setdefault(projection.name, []).extend(names)
    if wants_distance:
        profile = requests.setdefault(catalog.VIEW_NODE_PROFILE, [])
        profile.extend(n for n in _DISTANCE_INPUTS if n not in profile)
    return requests, wants_distance


def _fetch_view(
    store: FeatureStore, timestamps: pd.Series, entity_df: pd.DataFrame, view: str, names: list[str]
) -> pd.DataFrame:
    """One view's features aligned to ``entity_df`` rows (NaN where the view has no row in TTL)."""
    keys = list(store.get_feature_view(view).join_keys)
    lookups = pd.DataFrame({"event_timestamp": timestamps.to_numpy()}, index=entity_df.index)
    for key in keys:
        lookups[key] = entity_df[key].astype(str).to_numpy()
    group = lookups.groupby(["event_timestamp", *keys], sort=False).ngroup().to_numpy()
    unique = lookups.assign(**{_LOOKUP: group}).drop_duplicates(_LOOKUP).reset_index(drop=True)
    refs = [f"{view}:{name}" for name in names]
    with quiet_feast(True):
        found = store.get_historical_features(entity_df=unique, features=refs).to_df()
    aligned = pd.DataFrame({_LOOKUP: group}).merge(found[[_LOOKUP, *names]], on=_LOOKUP, how="left")
    return aligned[names].set_axis(entity_df.index)


def _distance(store: FeatureStore, fetched: pd.DataFrame, entity_df: pd.DataFrame) -> pd.Series:
    """The registered ``node_distance`` transformation applied to node and request coordinates."""
    odfv = store.get_on_demand_feature_view(catalog.VIEW_DISTANCE)
    inputs = pd.DataFrame(
        {
            "node_lat": pd.to_numeric(fetched["node_lat"], errors="coerce").to_numpy(dtype=float),
            "node_lon": pd.to_numeric(fetched["node_lon"], errors="coerce").to_numpy(dtype=float),
            "dest_lat": entity_df["dest_lat"].to_numpy(dtype=float),
            "dest_lon": entity_df["dest_lon"].to_numpy(dtype=float),
        }
    )
    with quiet_feast(True):
        table = odfv.transform_arrow(pa.Table.from_pandas(inputs, preserve_index=False))
    return pd.Series(
        table.column("distance_km").to_numpy(zero_copy_only=False), index=entity_df.index
    )


def training_frame(store: FeatureStore, entity_df: pd.DataFrame, service: str) -> pd.DataFrame:
    """Point-in-time features of ``service`` for each entity row, in catalogue names.

    Returns the entity columns unchanged (same rows, same index and order) followed by the
    service's stored and on-demand features in catalogue order; a feature with no row inside
    its view's TTL at the entity's time takes its value from ``catalog.FEATURE_DEFAULTS``.
    """
    _check(entity_df, service)
    features = stored_features(service)
    timestamps = pd.to_datetime(entity_df["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    requests, wants_distance = _view_requests(store, service)
    fetched = pd.concat(
        [
            _fetch_view(store, timestamps, entity_df, view, names)
            for view, names in requests.items()
        ],
        axis=1,
    )
    if wants_distance:
        fetched["distance_km"] = _distance(store, fetched, entity_df)
    out = entity_df.copy()
    for name in features:
        out[name] = (
            pd.to_numeric(fetched[name], errors="coerce")
            .fillna(catalog.FEATURE_DEFAULTS[name])
            .astype(float)
        )
    return out
