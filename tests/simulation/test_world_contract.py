"""Data-contract tests: every canonical table is written, valid, UTC, and free of ground truth."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pandera.errors
import pytest
from sim_world import DAYS, END

from features.contracts.raw import SCHEMAS, TABLES, validate
from simulation import WorldSummary

TRUTH_COLUMNS = {"true_on_hand", "true", "shrink", "velocity_class", "count_interval"}


@pytest.mark.parametrize("name", TABLES)
def test_each_table_satisfies_its_contract(tables: dict[str, pd.DataFrame], name: str) -> None:
    frame = tables[name]
    assert len(frame) > 0
    validate(name, frame)
    assert list(frame.columns) == list(SCHEMAS[name].to_schema().columns)


def test_contract_would_catch_a_broken_table(tables: dict[str, pd.DataFrame]) -> None:
    broken = tables["allocations"].head(5).copy()
    broken.loc[broken.index[0], "qty"] = 0
    with pytest.raises(pandera.errors.SchemaError):
        validate("allocations", broken)


def test_no_ground_truth_in_canonical_tables(tables: dict[str, pd.DataFrame]) -> None:
    for name in TABLES:
        assert not TRUTH_COLUMNS & set(tables[name].columns), name
    truth = tables["true_inventory"]
    assert list(truth.columns) == ["event_timestamp", "node_id", "sku", "true_on_hand"]
    books = tables["inventory_snapshots"]
    merged = books.merge(truth, on=["event_timestamp", "node_id", "sku"], validate="one_to_one")
    assert len(merged) == len(books)
    # the hidden truth really differs from the books somewhere, so hiding it matters
    assert (merged["on_hand"] != merged["true_on_hand"]).mean() > 0.05


def test_truth_lives_outside_raw_dir(world: WorldSummary) -> None:
    assert world.truth_path.exists()
    assert world.truth_path.parent != world.raw_dir
    assert not list(world.raw_dir.glob("*true*"))


def test_counts_match_files(world: WorldSummary, tables: dict[str, pd.DataFrame]) -> None:
    assert world.counts == {name: len(tables[name]) for name in TABLES}


def test_daily_tables_are_stamped_23h_utc_ending_yesterday(
    world: WorldSummary, tables: dict[str, pd.DataFrame]
) -> None:
    last_day = END.date() - timedelta(days=1)
    assert world.end == pd.Timestamp(last_day, tz="UTC") + pd.Timedelta(hours=23)
    assert world.start == pd.Timestamp(last_day - timedelta(days=DAYS - 1), tz="UTC")
    for name in ("inventory_snapshots", "demand", "node_days"):
        ts = tables[name]["event_timestamp"]
        assert str(ts.dt.tz) == "UTC"
        assert (ts.dt.hour == 23).all() and (ts.dt.minute == 0).all()
        assert ts.max() == world.end
        assert ts.dt.normalize().nunique() == DAYS


def test_events_happen_inside_the_working_day(tables: dict[str, pd.DataFrame]) -> None:
    for name in ("allocations", "shipments"):
        ts = tables[name]["event_timestamp"]
        assert str(ts.dt.tz) == "UTC"
        assert ts.dt.hour.between(8, 22).all()
        days = set(ts.dt.date)
        assert min(days) >= date(2025, 5, 4) and max(days) <= date(2025, 6, 1)


def test_daily_rows_cover_every_node_and_stocked_pair(tables: dict[str, pd.DataFrame]) -> None:
    nodes = tables["nodes"]
    per_day = tables["node_days"].groupby("event_timestamp")["node_id"].nunique()
    assert (per_day == len(nodes)).all()
    snaps = tables["inventory_snapshots"].groupby("event_timestamp").size()
    assert snaps.nunique() == 1
    keys = ["event_timestamp", "node_id", "sku"]
    assert not tables["inventory_snapshots"].duplicated(keys).any()
    pd.testing.assert_frame_equal(
        tables["inventory_snapshots"][keys], tables["demand"][keys], check_like=True
    )


def test_references_are_consistent(tables: dict[str, pd.DataFrame]) -> None:
    node_ids, skus = set(tables["nodes"]["node_id"]), set(tables["skus"]["sku"])
    for name in ("inventory_snapshots", "demand", "node_days", "allocations", "shipments"):
        assert set(tables[name]["node_id"]) <= node_ids, name
    for name in ("inventory_snapshots", "demand", "allocations"):
        assert set(tables[name]["sku"]) <= skus, name
    alloc, ship = tables["allocations"], tables["shipments"]
    accepted = alloc[~alloc["rejected"]]
    assert set(zip(ship["order_id"], ship["node_id"], strict=True)) == set(
        zip(accepted["order_id"], accepted["node_id"], strict=True)
    )
    assert (alloc.loc[alloc["rejected"], "reason"] == "not_in_stock").all()
    assert alloc.loc[~alloc["rejected"], "reason"].isna().all()


def test_nodes_are_real_places(tables: dict[str, pd.DataFrame]) -> None:
    nodes = tables["nodes"]
    assert set(nodes["node_type"]) == {"dc", "store", "3pl"}
    assert nodes["postal_code"].str.fullmatch(r"\d{5}").all()
    assert nodes["timezone"].str.startswith("America/").all()
    assert (~nodes["enabled"]).sum() >= 2
    assert (nodes.loc[nodes["node_type"] == "dc", "priority"] == 1).all()
    dcs = nodes[nodes["node_type"] == "dc"]
    assert (dcs["ships_groups"].str.count(",") == 4).all()
    assert (nodes["daily_capacity"] > 0).all()
    assert nodes["lon"].between(-125, -66).all() and nodes["lat"].between(24, 50).all()
