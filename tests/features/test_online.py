"""Materialisation and online snapshots against real SQLite and Redis online stores."""

from __future__ import annotations

import shutil
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast import FeatureStore

from features import catalog
from features.online import EVENT_SECONDS, OnlineSnapshot, read_online_snapshot
from features.online_sqlite import decode_value, read_sqlite_snapshot
from features.store import apply_definitions, materialize, open_store, teardown

Tables = tuple[Path, dict[str, Path]]
NODE_SKUS = [("N1", "A"), ("N2", "B"), ("N3", "C"), ("N9", "A")]
LANES = [("N1", "east"), ("N3", "west"), ("N1", "nowhere")]


def _fresh_dir(feature_tables: Tables, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for path in feature_tables[1].values():
        shutil.copy(path, target / path.name)
    return target


def _latest(
    feature_tables: Tables, view: str, keys: list[str], at: pd.Timestamp | None = None
) -> pd.DataFrame:
    table = pd.read_parquet(feature_tables[1][view])
    if at is not None:
        table = table[table["event_timestamp"] <= at]
    return table.sort_values("event_timestamp").groupby(keys).tail(1).set_index(keys)


def _snapshot(store: FeatureStore) -> OnlineSnapshot:
    return read_online_snapshot(store, ["N1", "N2", "N3", "N9"], NODE_SKUS, LANES, batch=2)


def _check_snapshot(
    snap: OnlineSnapshot, feature_tables: Tables, at: pd.Timestamp | None = None
) -> None:
    profile = _latest(feature_tables, catalog.VIEW_NODE_PROFILE, ["node_id"], at)
    ops = _latest(feature_tables, catalog.VIEW_NODE_OPS, ["node_id"], at)
    assert set(snap.node) == {"N1", "N2", "N3"}
    for node_id, values in snap.node.items():
        assert set(values) == set(catalog.NODE_PROFILE) | set(catalog.NODE_OPS) | {EVENT_SECONDS}
        # a row's event time is the older of its two views' rows
        older = min(profile.loc[node_id, "event_timestamp"], ops.loc[node_id, "event_timestamp"])
        assert values[EVENT_SECONDS] == older.timestamp()
        assert values["daily_capacity"] == profile.loc[node_id, "daily_capacity"]
        assert values["utilisation_7d"] == pytest.approx(ops.loc[node_id, "utilisation_7d"])
    inv = _latest(feature_tables, catalog.VIEW_NODE_SKU_INVENTORY, ["node_id", "sku"], at)
    assert set(snap.node_sku) == {("N1", "A"), ("N2", "B"), ("N3", "C")}
    for key, values in snap.node_sku.items():
        assert set(values) == set(catalog.NODE_SKU_INVENTORY) | {EVENT_SECONDS}
        assert values[EVENT_SECONDS] == inv.loc[key, "event_timestamp"].timestamp()
        assert values["on_hand"] == inv.loc[key, "on_hand"]
        assert values["days_of_cover"] == pytest.approx(inv.loc[key, "days_of_cover"])
    lanes = _latest(feature_tables, catalog.VIEW_LANE_PERFORMANCE, ["node_id", "dest_region"], at)
    assert set(snap.lane) == {("N1", "east"), ("N3", "west")}
    for key, values in snap.lane.items():
        assert values["lane_transit_p50_28d"] == pytest.approx(
            lanes.loc[key, "lane_transit_p50_28d"]
        )
    newest = max(profile["event_timestamp"].max(), lanes["event_timestamp"].max())
    assert snap.newest_event == newest.to_pydatetime()
    assert snap.oldest_event is not None and snap.oldest_event <= snap.newest_event
    assert snap.read_at.tzinfo is not None


def test_sqlite_materialize_then_snapshot(feature_tables: Tables, tmp_path: Path) -> None:
    feature_dir = _fresh_dir(feature_tables, tmp_path / "feat")
    store = open_store(feature_dir)
    apply_definitions(store, feature_dir)
    empty = _snapshot(store)
    assert empty.node == {} and empty.oldest_event is None and empty.age_hours() is None
    # an end ahead of the wall clock (a simulated clock) loads everything up to it
    materialize(store, end=datetime.now(UTC) + timedelta(days=30))
    snap = _snapshot(store)
    _check_snapshot(snap, feature_tables)
    assert snap.age_hours() is not None and snap.age_hours() > 0  # type: ignore[operator]
    _check_direct_read(store, feature_dir, empty, snap)


def _check_direct_read(
    store: FeatureStore, feature_dir: Path, empty: OnlineSnapshot, snap: OnlineSnapshot
) -> None:
    """The service's Feast-free read of the SQLite tables gives what Feast gives."""
    direct = read_sqlite_snapshot(
        feature_dir / "online.db", store.project, ["N1", "N2", "N3", "N9"], NODE_SKUS, LANES
    )
    assert snap.node and snap.node_sku and snap.lane and empty.node == {}
    assert (direct.node, direct.node_sku, direct.lane) == (snap.node, snap.node_sku, snap.lane)
    assert (direct.oldest_event, direct.newest_event) == (snap.oldest_event, snap.newest_event)
    teardown(store)


def test_incremental_materialize_moves_forward_twice(
    feature_tables: Tables, tmp_path: Path
) -> None:
    feature_dir = _fresh_dir(feature_tables, tmp_path / "feat")
    store = open_store(feature_dir)
    apply_definitions(store, feature_dir)
    days = (
        pd.read_parquet(feature_tables[1][catalog.VIEW_NODE_OPS])["event_timestamp"]
        .sort_values()
        .unique()
    )
    middle = pd.Timestamp(days[len(days) // 2])
    materialize(store, end=middle.to_pydatetime())  # first run: whole history up to the middle
    _check_snapshot(_snapshot(store), feature_tables, at=middle)
    ends = {v.name: v.most_recent_end_time for v in store.list_feature_views()}
    assert all(end is not None for end in ends.values())
    later = pd.Timestamp(days[-5])
    materialize(store, end=later.to_pydatetime())  # incremental from the middle
    _check_snapshot(_snapshot(store), feature_tables, at=later)
    materialize(store, progress=True)  # incremental again, up to now
    _check_snapshot(_snapshot(store), feature_tables)
    after = {v.name: v.most_recent_end_time for v in store.list_feature_views()}
    assert all(after[name] > ends[name] for name in ends)  # type: ignore[operator]
    teardown(store)


def test_explicit_window_materialize(feature_tables: Tables, tmp_path: Path) -> None:
    feature_dir = _fresh_dir(feature_tables, tmp_path / "feat")
    store = open_store(feature_dir)
    apply_definitions(store, feature_dir)
    days = (
        pd.read_parquet(feature_tables[1][catalog.VIEW_NODE_OPS])["event_timestamp"]
        .sort_values()
        .unique()
    )
    start, end = pd.Timestamp(days[-3]), pd.Timestamp(days[-2])
    materialize(store, end.to_pydatetime(), start=start.to_pydatetime())
    snap = _snapshot(store)
    assert snap.newest_event == end.to_pydatetime()
    assert snap.oldest_event is not None and snap.oldest_event >= start.to_pydatetime()
    teardown(store)


def test_materialize_needs_applied_views(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(ValueError, match="apply_definitions"):
        materialize(store)


def test_snapshot_rejects_a_zero_batch(feature_tables: Tables, tmp_path: Path) -> None:
    store = open_store(_fresh_dir(feature_tables, tmp_path / "feat"))
    with pytest.raises(ValueError, match="batch"):
        read_online_snapshot(store, ["N1"], [], [], batch=0)


@pytest.mark.redis
def test_redis_materialize_snapshot_and_teardown(
    feature_tables: Tables, tmp_path: Path, redis_project: str
) -> None:
    feature_dir = _fresh_dir(feature_tables, tmp_path / "feat")
    store = open_store(
        feature_dir, online="redis", redis_url="redis://127.0.0.1:6379/0", project=redis_project
    )
    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    pattern = f"*{redis_project}"
    try:
        apply_definitions(store, feature_dir)
        materialize(store)
        assert any(True for _ in client.scan_iter(match=pattern, count=1000))
        _check_snapshot(_snapshot(store), feature_tables)
        materialize(store)  # incremental on Redis too
        _check_snapshot(_snapshot(store), feature_tables)
    finally:
        teardown(store)
    assert not any(True for _ in client.scan_iter(match=pattern, count=1000))


def test_direct_read_refuses_what_it_does_not_decode() -> None:
    from features.online_sqlite import UnsupportedEncoding

    assert decode_value(b"") is None
    assert decode_value(b")" + struct.pack("<d", 2.5)) == 2.5  # double_val
    assert decode_value(b"5" + struct.pack("<f", 0.5)) == 0.5  # float_val
    assert decode_value(b"\x20\x7f") == 127.0  # int64_val
    assert decode_value(b"\x20" + b"\xff" * 9 + b"\x01") == -1.0  # negative int64
    with pytest.raises(UnsupportedEncoding):
        decode_value(b"\x12\x01x")  # string_val


def test_a_reload_replaces_recomputed_rows_but_never_a_pushed_one(
    feature_tables: Tables, tmp_path: Path
) -> None:
    """A refresh recomputes recent days (newly exported history); the batch views reload
    them, while the node×SKU view the ledger pushes to keeps its newer live row."""
    from features.push import LiveStock, live_inventory_frame, push_live_inventory

    feature_dir = _fresh_dir(feature_tables, tmp_path / "feat")
    store = open_store(feature_dir)
    apply_definitions(store, feature_dir)
    lanes_path = feature_dir / f"{catalog.VIEW_LANE_PERFORMANCE}.parquet"
    lanes = pd.read_parquet(lanes_path)
    last = lanes["event_timestamp"].max()
    end = (last + pd.Timedelta(hours=1)).to_pydatetime()
    materialize(store, end=end)
    live = live_inventory_frame([LiveStock("N1", "A", 77, None, reserved=7)], {}, end)
    push_live_inventory(store, live)

    lanes.loc[lanes["event_timestamp"] == last, "lane_transit_p50_28d"] = 0.5
    lanes.to_parquet(lanes_path, index=False)
    materialize(store, end=end)  # incremental: the recomputed day is behind its end
    assert all(v["lane_transit_p50_28d"] != 0.5 for v in _snapshot(store).lane.values())
    materialize(store, end=end, reload=timedelta(days=2))
    snap = _snapshot(store)
    assert snap.lane and all(v["lane_transit_p50_28d"] == 0.5 for v in snap.lane.values())
    assert snap.node_sku[("N1", "A")]["on_hand"] == 77  # the live row was not replaced
    assert snap.node_sku[("N1", "A")]["available"] == 70
    teardown(store)
