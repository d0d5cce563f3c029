"""Each snapshot row keeps its event time, so a decision knows how old the rows it read are
instead of trusting the newest row in the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from features import catalog
from features.online import EVENT_SECONDS
from serving.feature_snapshot import FeatureSnapshot

CLOSE = datetime(2026, 3, 2, tzinfo=UTC)
OLD = CLOSE - timedelta(days=60)


def _row(columns: tuple[str, ...], at: datetime) -> dict[str, float]:
    return {**dict.fromkeys(columns, 1.0), EVENT_SECONDS: at.timestamp()}


def _snapshot() -> FeatureSnapshot:
    node_cols = catalog.NODE_PROFILE + catalog.NODE_OPS
    return FeatureSnapshot.from_online(
        {"N1": _row(node_cols, CLOSE), "N2": _row(node_cols, CLOSE)},
        {("N1", "a"): _row(catalog.NODE_SKU_INVENTORY, CLOSE)},
        {
            ("N1", "NY"): _row(catalog.LANE_PERFORMANCE, CLOSE),
            ("N2", "NY"): _row(catalog.LANE_PERFORMANCE, OLD),  # a lane nobody refreshed
        },
        newest_event=CLOSE,
        oldest_event=OLD,
    )


def test_the_oldest_row_a_decision_reads_is_its_age() -> None:
    snap = _snapshot()
    assert snap.oldest_used(["N1"], ["A"], ["NY"]) == CLOSE
    assert snap.oldest_used(["N1", "N2"], ["A", "A"], ["NY", "NY"]) == OLD
    # rows the store lacks (defaults) carry no time; nothing stored → no age
    assert snap.oldest_used(["N2"], ["A"], ["CA"]) == CLOSE
    assert snap.oldest_used(["N9"], ["Z"], ["CA"]) is None


def test_a_pushed_row_is_stamped_and_does_not_date_the_others() -> None:
    snap = _snapshot()
    later = CLOSE + timedelta(hours=9)
    values = {c: 5.0 for c in catalog.NODE_SKU_INVENTORY}
    pushed = snap.with_node_sku({("N2", "a"): values, ("N1", "A"): values}, later)
    assert pushed.newest_event == later
    assert pushed.oldest_used(["N2"], ["A"], ["CA"]) == CLOSE  # N2's node row, from close
    assert pushed.oldest_used(["N1"], ["a"], ["CA"]) == CLOSE
    assert pushed.node_sku_row("N2", "A") == values
    stamps = pushed.node_sku_ts
    assert stamps is not None
    for key in (("N2", "A"), ("N1", "A")):
        assert stamps[pushed.node_sku_index[key]] == later.timestamp()
    # a fresh push never hides a stale lane the decision reads
    assert pushed.oldest_used(["N2"], ["A"], ["NY"]) == OLD
    assert snap.oldest_used(["N2"], ["A"], ["CA"]) == CLOSE  # the old snapshot is untouched


def test_locate_finds_the_rows_a_lookup_per_pair_finds() -> None:
    snap = _snapshot()
    values = dict.fromkeys(catalog.NODE_SKU_INVENTORY, 2.0)
    pushed = snap.with_node_sku({("N2", "b"): values}, CLOSE)  # a row the store lacked
    node_ids = ["N1", "N2", "N9", "N1", "N2", "N1", "N2", "N9"]
    skus = ["a", "a", "a", "B", "b", "A", "Z", "Z"]  # runs, any case, unknown SKU and node
    for s in (snap, pushed):
        for region in ("NY", "CA", None):
            got = s.locate(node_ids, skus, region)
            want = s._indices(node_ids, skus, [region] * len(node_ids))
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)
    assert pushed.locate(["N2"], ["B"], "NY")[1][0] == pushed.node_sku_index[("N2", "B")]
    assert snap.locate(["N2"], ["B"], "NY")[1][0] == len(snap.node_sku) - 1  # old one untouched
    assert [len(a) for a in snap.locate([], [], "NY")] == [0, 0, 0]


def test_row_tables_follow_pushes_of_new_rows_and_new_nodes() -> None:
    node_cols = catalog.NODE_PROFILE + catalog.NODE_OPS
    snap = FeatureSnapshot.from_online(
        {"N1": _row(node_cols, CLOSE), "N2": _row(node_cols, CLOSE)},
        {
            ("N1", "a"): _row(catalog.NODE_SKU_INVENTORY, CLOSE),
            ("N5", "a"): _row(catalog.NODE_SKU_INVENTORY, CLOSE),  # no node row
            ("N2", "c"): _row(catalog.NODE_SKU_INVENTORY, CLOSE),
        },
        {
            ("N1", "NY"): _row(catalog.LANE_PERFORMANCE, CLOSE),
            ("N6", "NY"): _row(catalog.LANE_PERFORMANCE, CLOSE),  # no node row either
        },
        newest_event=CLOSE,
        oldest_event=OLD,
    )
    node_ids = ["N1", "N2", "N5", "N6", "N7", "N1", "N5", "N2", "N7", "N2"]
    skus = ["A", "A", "A", "A", "A", "c", "c", "C", "C", "b"]
    node_set = ["N1", "N2", "N5", "N6", "N7"]

    def check(s: FeatureSnapshot) -> None:
        for region in ("NY", "CA", None):
            got = s.locate(node_ids, skus, region)
            want = s._indices(node_ids, skus, [region] * len(node_ids))
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)
            lines = s.locate_lines([("a", node_ids[:5]), ("C", node_ids[5:9])], region)
            for g, w in zip(lines, want, strict=True):
                np.testing.assert_array_equal(g, w[:9])
            # positions of a node set's ids (remembered per id list), then picked per line
            at = s.positions_for(node_set)
            assert s.positions_for(node_set) is at
            picked = s.locate_at([("A", at[[0, 1, 2, 3, 4]]), ("c", at[[0, 2]])], region)
            for g, w in zip(picked, want, strict=True):
                np.testing.assert_array_equal(g, w[[0, 1, 2, 3, 4, 5, 6]])

    check(snap)  # every table used once, so the pushes below start from built tables
    values = dict.fromkeys(catalog.NODE_SKU_INVENTORY, 3.0)
    # a row replaced, then one added (the missing row moves), then a node never seen before
    for rows in ({("N1", "a"): values}, {("N2", "a"): values}, {("N7", "c"): values}):
        before = snap
        snap = snap.with_node_sku(rows, CLOSE)
        check(snap)
        check(before)  # the old snapshot keeps its own rows
    assert snap.locate(["N7"], ["C"], "NY")[1][0] == snap.node_sku_index[("N7", "C")]
    assert snap.locate(["N7"], ["A"], "NY")[1][0] == len(snap.node_sku) - 1
