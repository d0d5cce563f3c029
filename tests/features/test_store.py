"""The real Feast store on SQLite: apply, point-in-time training frames, on-demand distance."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from feast import FeatureStore

from features import catalog
from features.repo.services import stored_features
from features.store import (
    apply_definitions,
    materialize,
    open_store,
    redis_connection_string,
    teardown,
    training_frame,
)
from routing.geo import haversine_km

Raw = tuple[Path, dict[str, pd.DataFrame]]
Tables = tuple[Path, dict[str, Path]]


@pytest.fixture(scope="module")
def applied(
    feature_tables: Tables, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FeatureStore, Path]]:
    feature_dir = tmp_path_factory.mktemp("store")
    for path in feature_tables[1].values():
        shutil.copy(path, feature_dir / path.name)
    store = open_store(feature_dir)
    apply_definitions(store, feature_dir)
    yield store, feature_dir
    teardown(store)


def _stockout_entities(raw: dict[str, pd.DataFrame]) -> pd.DataFrame:
    alloc = raw["allocations"]
    return alloc[["event_timestamp", "node_id", "sku", "qty", "rejected", "allocation_id"]].copy()


def _asof(
    table: pd.DataFrame, keys: list[str], at: pd.Timestamp, values: dict[str, str]
) -> pd.Series:
    """Independent oracle: the newest feature row at or before ``at`` for these key values."""
    mask = (table["event_timestamp"] <= at) & (table["event_timestamp"] > at - pd.Timedelta(days=3))
    for key, value in values.items():
        mask &= table[key] == value
    return table[mask].sort_values("event_timestamp").iloc[-1]


def test_store_config_is_written_for_the_feast_cli(applied: tuple[FeatureStore, Path]) -> None:
    _, feature_dir = applied
    config = yaml.safe_load((feature_dir / "feature_store.yaml").read_text())
    assert config["offline_store"]["type"] == "file"
    assert config["online_store"] == {
        "type": "sqlite",
        "path": str(feature_dir.resolve() / "online.db"),
    }
    assert config["entity_key_serialization_version"] == 3
    assert Path(config["registry"]["path"]).parent == feature_dir.resolve()


def test_apply_registers_everything_and_is_idempotent(applied: tuple[FeatureStore, Path]) -> None:
    store, feature_dir = applied
    names = apply_definitions(store, feature_dir)
    assert {
        "node",
        "sku",
        "dest_region",
        catalog.VIEW_NODE_PROFILE,
        catalog.VIEW_NODE_OPS,
        catalog.VIEW_NODE_SKU_INVENTORY,
        catalog.VIEW_LANE_PERFORMANCE,
        catalog.VIEW_DISTANCE,
        catalog.SERVICE_STOCKOUT,
        catalog.SERVICE_DELIVERY,
    } == set(names)
    assert len(store.list_feature_views()) == 4
    service = store.get_feature_service(catalog.SERVICE_DELIVERY)
    served = [f.name for p in service.feature_view_projections for f in p.features]
    assert sorted(served) == sorted(stored_features(catalog.SERVICE_DELIVERY))


def test_apply_requires_the_feature_tables(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(FileNotFoundError, match="build_feature_tables"):
        apply_definitions(store, tmp_path)


def test_stockout_frame_keeps_rows_and_labels(
    applied: tuple[FeatureStore, Path], raw_world: Raw
) -> None:
    store, _ = applied
    entities = _stockout_entities(raw_world[1]).sample(frac=1.0, random_state=1)
    frame = training_frame(store, entities, catalog.SERVICE_STOCKOUT)
    features = [f for f in catalog.STOCKOUT_FEATURES if f not in catalog.REQUEST]
    assert list(frame.columns) == [*entities.columns, *features]
    assert frame.index.equals(entities.index)
    pd.testing.assert_frame_equal(frame[entities.columns], entities)
    assert not frame[features].isna().any().any()


def test_stockout_frame_matches_an_asof_oracle(
    applied: tuple[FeatureStore, Path], raw_world: Raw, feature_tables: Tables
) -> None:
    store, _ = applied
    entities = _stockout_entities(raw_world[1]).iloc[50:80]
    frame = training_frame(store, entities, catalog.SERVICE_STOCKOUT)
    inv = pd.read_parquet(feature_tables[1][catalog.VIEW_NODE_SKU_INVENTORY])
    ops = pd.read_parquet(feature_tables[1][catalog.VIEW_NODE_OPS])
    for _, row in frame.iterrows():
        expected = _asof(
            inv,
            ["node_id", "sku"],
            row["event_timestamp"],
            {"node_id": row["node_id"], "sku": row["sku"]},
        )
        assert row["on_hand"] == expected["on_hand"]
        assert row["days_of_cover"] == pytest.approx(expected["days_of_cover"])
        expected_ops = _asof(ops, ["node_id"], row["event_timestamp"], {"node_id": row["node_id"]})
        assert row["rejection_rate_28d"] == pytest.approx(expected_ops["rejection_rate_28d"])


def test_a_feature_row_after_the_event_never_leaks(
    applied: tuple[FeatureStore, Path], feature_tables: Tables
) -> None:
    store, _ = applied
    inv = pd.read_parquet(feature_tables[1][catalog.VIEW_NODE_SKU_INVENTORY])
    pair = inv[(inv["node_id"] == "N2") & (inv["sku"] == "C")].set_index("event_timestamp")
    days = pair.index.sort_values()
    # choose a day whose on_hand differs from the previous day, then ask one second before it
    changed = next(
        d
        for prev, d in itertools.pairwise(days[5:])
        if pair.loc[d, "on_hand"] != pair.loc[prev, "on_hand"]
    )
    before = changed - pd.Timedelta(seconds=1)
    first = days.min() - pd.Timedelta(hours=1)
    entities = pd.DataFrame(
        {
            "event_timestamp": [before, changed, first],
            "node_id": ["N2", "N2", "N2"],
            "sku": ["C", "C", "C"],
            "qty": [1, 1, 1],
            "label": [0, 1, 0],
        }
    )
    frame = training_frame(store, entities, catalog.SERVICE_STOCKOUT)
    assert frame.loc[0, "on_hand"] == pair.loc[changed - pd.Timedelta(days=1), "on_hand"]
    assert frame.loc[1, "on_hand"] == pair.loc[changed, "on_hand"]
    # before any feature row exists the row survives with the documented defaults
    assert frame.loc[2, "on_hand"] == catalog.FEATURE_DEFAULTS["on_hand"]
    assert frame.loc[2, "node_type_code"] == catalog.FEATURE_DEFAULTS["node_type_code"]
    assert list(frame["label"]) == [0, 1, 0]


def test_duplicate_lookups_keep_every_entity_row(
    applied: tuple[FeatureStore, Path], raw_world: Raw
) -> None:
    store, _ = applied
    base = _stockout_entities(raw_world[1]).iloc[:5]
    entities = pd.concat(
        [base, base.assign(qty=base["qty"] + 10, rejected=~base["rejected"])], ignore_index=True
    )
    frame = training_frame(store, entities, catalog.SERVICE_STOCKOUT)
    assert len(frame) == 10
    assert list(frame["qty"]) == list(entities["qty"])
    pd.testing.assert_frame_equal(
        frame.iloc[:5, 6:].reset_index(drop=True), frame.iloc[5:, 6:].reset_index(drop=True)
    )


def test_delivery_frame_has_haversine_distance(
    applied: tuple[FeatureStore, Path], raw_world: Raw
) -> None:
    store, _ = applied
    raw = raw_world[1]
    ships = raw["shipments"]
    ships = ships[ships["event_timestamp"] > ships["event_timestamp"].min().ceil("D")].iloc[100:140]
    entities = ships[
        ["event_timestamp", "node_id", "dest_region", "dest_lat", "dest_lon", "delivery_days"]
    ].assign(weekday=ships["event_timestamp"].dt.weekday)
    frame = training_frame(store, entities, catalog.SERVICE_DELIVERY)
    assert list(frame.columns) == [*entities.columns, *stored_features(catalog.SERVICE_DELIVERY)]
    nodes = raw["nodes"].set_index("node_id").loc[frame["node_id"]]
    # The Feast on-demand view and the request path share routing.geo's one formula.
    expected = haversine_km(
        nodes["lat"].to_numpy(), nodes["lon"].to_numpy(), frame["dest_lat"], frame["dest_lon"]
    )
    np.testing.assert_allclose(frame["distance_km"].to_numpy(), expected, rtol=1e-12)
    assert (frame["lane_shipments_28d"] >= 0).all()
    assert not frame.isna().any().any()


def test_rows_before_any_feature_row_get_documented_defaults(
    applied: tuple[FeatureStore, Path], raw_world: Raw
) -> None:
    store, _ = applied
    first = raw_world[1]["shipments"]["event_timestamp"].min().floor("D") - pd.Timedelta(days=1)
    entities = pd.DataFrame(
        {
            "event_timestamp": [first],
            "node_id": ["N1"],
            "dest_region": ["east"],
            "dest_lat": [40.0],
            "dest_lon": [-75.0],
            "weekday": [0],
        }
    )
    frame = training_frame(store, entities, catalog.SERVICE_DELIVERY)
    for name in stored_features(catalog.SERVICE_DELIVERY):
        assert frame.loc[0, name] == catalog.FEATURE_DEFAULTS[name], name


def test_online_distance_uses_the_request_coordinates(
    applied: tuple[FeatureStore, Path], raw_world: Raw
) -> None:
    store, _ = applied
    materialize(store)
    response = store.get_online_features(
        features=[f"{catalog.VIEW_DISTANCE}:distance_km"],
        entity_rows={
            "node_id": ["N1", "N3"],
            "dest_lat": [34.05, 34.05],
            "dest_lon": [-118.24, -118.24],
        },
    ).to_dict()
    nodes = raw_world[1]["nodes"].set_index("node_id").loc[["N1", "N3"]]
    expected = haversine_km(nodes["lat"].to_numpy(), nodes["lon"].to_numpy(), 34.05, -118.24)
    np.testing.assert_allclose(response["distance_km"], expected, rtol=1e-12)


def test_bad_requests_are_named(applied: tuple[FeatureStore, Path], raw_world: Raw) -> None:
    store, _ = applied
    entities = _stockout_entities(raw_world[1])
    with pytest.raises(KeyError, match="nope"):
        training_frame(store, entities, "nope")
    with pytest.raises(ValueError, match="qty"):
        training_frame(store, entities.drop(columns="qty"), catalog.SERVICE_STOCKOUT)
    with pytest.raises(ValueError, match="on_hand"):
        training_frame(store, entities.assign(on_hand=1), catalog.SERVICE_STOCKOUT)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:6379", "127.0.0.1:6379,db=0"),
        ("redis://127.0.0.1:6379/2", "127.0.0.1:6379,db=2"),
        ("redis://:pw@cache:6380", "cache:6380,db=0,password=pw"),
        ("cache:6379,db=3", "cache:6379,db=3"),
    ],
)
def test_redis_urls_become_feast_connection_strings(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected
