"""Feature computation: output contracts, hand-checked values and point-in-time behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.errors
import pytest

from features import catalog
from features.compute import build_feature_tables, day_close, lane_performance, load_raw, node_ops
from features.contracts.feature_tables import validate_features

Raw = tuple[Path, dict[str, pd.DataFrame]]
Tables = tuple[Path, dict[str, Path]]


def _read(tables: Tables, view: str) -> pd.DataFrame:
    return pd.read_parquet(tables[1][view])


def test_every_view_has_a_valid_table_without_gaps(feature_tables: Tables) -> None:
    columns = {
        catalog.VIEW_NODE_PROFILE: catalog.NODE_PROFILE,
        catalog.VIEW_NODE_OPS: catalog.NODE_OPS,
        catalog.VIEW_NODE_SKU_INVENTORY: catalog.NODE_SKU_INVENTORY,
        catalog.VIEW_LANE_PERFORMANCE: catalog.LANE_PERFORMANCE,
    }
    assert set(feature_tables[1]) == set(columns)
    for view, features in columns.items():
        table = validate_features(view, _read(feature_tables, view))
        assert len(table) > 0
        assert set(features) <= set(table.columns)
        assert not table.isna().any().any(), view
        assert str(table["event_timestamp"].dt.tz) == "UTC"
        assert (table["event_timestamp"] == table["event_timestamp"].dt.floor("D")).all()


def test_node_tables_cover_every_node_on_every_day(raw_world: Raw, feature_tables: Tables) -> None:
    raw = raw_world[1]
    last_event = raw["shipments"]["event_timestamp"].max()
    for view in (catalog.VIEW_NODE_PROFILE, catalog.VIEW_NODE_OPS):
        table = _read(feature_tables, view)
        per_day = table.groupby("event_timestamp")["node_id"].nunique()
        assert (per_day == len(raw["nodes"])).all()
        days = per_day.index
        assert (pd.Series(days).diff().dropna() == pd.Timedelta(days=1)).all()
        assert days.max() >= last_event


def test_capacity_follows_the_latest_report(raw_world: Raw, feature_tables: Tables) -> None:
    profile = _read(feature_tables, catalog.VIEW_NODE_PROFILE).set_index(
        ["event_timestamp", "node_id"]
    )
    node_days = raw_world[1]["node_days"]
    report = node_days[node_days["node_id"] == "N2"].iloc[25]
    stamp = day_close(pd.Series([report["event_timestamp"]])).iloc[0]
    assert profile.loc[(stamp, "N2"), "daily_capacity"] == report["capacity"]
    assert profile.loc[(stamp, "N2"), "node_type_code"] == catalog.NODE_TYPE_CODES["store"]


def test_node_ops_windows_match_a_hand_count(raw_world: Raw, feature_tables: Tables) -> None:
    raw = raw_world[1]
    ops = _read(feature_tables, catalog.VIEW_NODE_OPS).set_index(["event_timestamp", "node_id"])
    stamp = ops.index.get_level_values(0).unique().sort_values()[30]
    nd = raw["node_days"]
    nd = nd[(nd["node_id"] == "N1") & (nd["event_timestamp"] <= stamp)]
    nd = nd[nd["event_timestamp"] > stamp - pd.Timedelta(days=7)]
    row = ops.loc[(stamp, "N1")]
    assert row["orders_7d"] == nd["orders"].sum()
    assert row["utilisation_7d"] == pytest.approx(nd["orders"].sum() / nd["capacity"].sum())
    alloc = raw["allocations"]
    window = alloc[
        (alloc["node_id"] == "N1")
        & (alloc["event_timestamp"] <= stamp)
        & (alloc["event_timestamp"] > stamp - pd.Timedelta(days=28))
    ]
    assert row["rejection_rate_28d"] == pytest.approx(window["rejected"].mean())


def test_inventory_features_match_a_hand_count(raw_world: Raw, feature_tables: Tables) -> None:
    raw = raw_world[1]
    inv = _read(feature_tables, catalog.VIEW_NODE_SKU_INVENTORY).set_index(
        ["event_timestamp", "node_id", "sku"]
    )
    stamp = inv.index.get_level_values(0).unique().sort_values()[35]
    row = inv.loc[(stamp, "N3", "B")]
    snaps = raw["inventory_snapshots"]
    snaps = snaps[
        (snaps["node_id"] == "N3") & (snaps["sku"] == "B") & (snaps["event_timestamp"] <= stamp)
    ]
    latest = snaps.sort_values("event_timestamp").iloc[-1]
    assert row["on_hand"] == latest["on_hand"]
    assert row["days_since_count"] == latest["days_since_count"]
    last28 = snaps[snaps["event_timestamp"] > stamp - pd.Timedelta(days=28)]
    assert row["stockout_days_28d"] == (last28["on_hand"] == 0).sum()
    demand = raw["demand"]
    demand = demand[
        (demand["node_id"] == "N3") & (demand["sku"] == "B") & (demand["event_timestamp"] <= stamp)
    ]
    last7 = demand[demand["event_timestamp"] > stamp - pd.Timedelta(days=7)]
    assert row["sales_velocity_7d"] == pytest.approx(last7["units"].sum() / 7)
    assert row["days_of_cover"] == pytest.approx(
        latest["on_hand"] / max(last7["units"].sum() / 7, 0.1)
    )


def _one_lane_world(raw: dict[str, pd.DataFrame], delivery_days: float) -> dict[str, pd.DataFrame]:
    ships = raw["shipments"].iloc[:1].copy()
    ships["event_timestamp"] = raw["node_days"]["event_timestamp"].min() + pd.Timedelta(hours=1)
    ships["delivery_days"] = delivery_days
    return {**raw, "shipments": ships}


def test_a_delivery_counts_only_once_it_has_happened(raw_world: Raw) -> None:
    raw = _one_lane_world(raw_world[1], delivery_days=5.0)
    shipped_at = raw["shipments"]["event_timestamp"].iloc[0]
    days = pd.date_range(shipped_at.floor("D"), periods=60, freq="D", name="event_timestamp")
    lanes = lane_performance(raw, days)
    assert lanes["event_timestamp"].min() >= shipped_at + pd.Timedelta(days=5)
    busy = lanes[lanes["lane_shipments_28d"] > 0]
    assert len(busy) == 28
    assert (busy["lane_shipments_28d"] == 1).all()
    assert (busy["lane_transit_p50_28d"] == 5.0).all()
    # after its window empties the lane keeps a row every day, with the training priors
    quiet = lanes[lanes["event_timestamp"] > busy["event_timestamp"].max()]
    assert len(quiet) == (days > busy["event_timestamp"].max()).sum() > 0
    assert (quiet["lane_shipments_28d"] == 0).all()
    for column in ("lane_transit_p50_28d", "lane_transit_p90_28d", "lane_late_rate_28d"):
        assert (quiet[column] == catalog.FEATURE_DEFAULTS[column]).all()
    ops = node_ops(raw, days).set_index(["event_timestamp", "node_id"])
    node = raw["shipments"]["node_id"].iloc[0]
    before = ops.xs(node, level="node_id").loc[
        : shipped_at + pd.Timedelta(days=4), "late_ship_rate_28d"
    ]
    assert (before == 0).all()
    assert ops.loc[(lanes["event_timestamp"].min(), node), "late_ship_rate_28d"] == 1.0


def test_undelivered_shipments_never_appear(raw_world: Raw) -> None:
    raw = _one_lane_world(raw_world[1], delivery_days=500.0)
    days = pd.date_range(
        raw["shipments"]["event_timestamp"].iloc[0].floor("D"),
        periods=40,
        freq="D",
        name="event_timestamp",
    )
    assert lane_performance(raw, days).empty


def test_lane_quantiles_are_ordered(feature_tables: Tables) -> None:
    lanes = _read(feature_tables, catalog.VIEW_LANE_PERFORMANCE)
    assert (lanes["lane_transit_p90_28d"] >= lanes["lane_transit_p50_28d"]).all()
    assert np.isin(lanes["dest_region"].unique(), ["east", "west"]).all()


def test_missing_canonical_table_is_named(raw_world: Raw, tmp_path: Path) -> None:
    for name in ("nodes", "demand"):
        pd.read_parquet(raw_world[0] / f"{name}.parquet").to_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(FileNotFoundError, match="inventory_snapshots"):
        load_raw(tmp_path)


def test_bad_canonical_rows_are_refused(raw_world: Raw, tmp_path: Path) -> None:
    for path in raw_world[0].glob("*.parquet"):
        frame = pd.read_parquet(path)
        if path.stem == "demand":
            frame.loc[0, "units"] = -3
        frame.to_parquet(tmp_path / path.name)
    with pytest.raises(pandera.errors.SchemaError, match="units"):
        build_feature_tables(tmp_path, tmp_path / "out")


def test_output_contract_rejects_impossible_values(feature_tables: Tables) -> None:
    ops = _read(feature_tables, catalog.VIEW_NODE_OPS)
    ops.loc[0, "rejection_rate_28d"] = 1.5
    with pytest.raises(pandera.errors.SchemaError, match="rejection_rate_28d"):
        validate_features(catalog.VIEW_NODE_OPS, ops)
    dup = pd.concat([ops.iloc[:2], ops.iloc[:1]]).assign(rejection_rate_28d=0.0)
    with pytest.raises(pandera.errors.SchemaError):
        validate_features(catalog.VIEW_NODE_OPS, dup)


def test_rejections_and_reservations_at_close_match_a_hand_count(
    raw_world: Raw, feature_tables: Tables
) -> None:
    inv = _read(feature_tables, catalog.VIEW_NODE_SKU_INVENTORY)
    # the books at close hold no reservations: everything recorded is available
    assert (inv["reserved"] == 0).all() and (inv["available"] == inv["on_hand"]).all()
    assert (inv["hours_since_count"] == inv["days_since_count"] * 24.0).all()
    row = inv.sort_values("rejections_7d").iloc[-1]
    assert row["rejections_7d"] > 0
    alloc = raw_world[1]["allocations"]
    stamp = row["event_timestamp"]
    window = alloc[
        (alloc["node_id"] == row["node_id"])
        & (alloc["sku"] == row["sku"])
        & alloc["rejected"]
        & (alloc["event_timestamp"] <= stamp)
        & (alloc["event_timestamp"] > stamp - pd.Timedelta(days=7))
    ]
    assert row["rejections_7d"] == window["order_id"].nunique()
