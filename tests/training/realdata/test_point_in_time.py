"""No feature reaches past its decision time: Olist purchase, FreshRetailNet close of day d."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.adapters import load_freshretail, load_olist
from features.adapters.samples import write_freshretail_sample, write_olist_sample
from features.realdata import fresh_views
from features.realdata.survival import kaplan_meier_quantile
from training.realdata import fresh_eval, olist_eval
from training.realdata.fresh_labels import CALENDAR


@pytest.fixture(scope="module")
def olist_frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    root = tmp_path_factory.mktemp("olist_pit")
    tables = load_olist(write_olist_sample(root / "data", n_orders=200, seed=5))
    cut = pd.Timestamp("2018-03-01", tz="UTC")
    return olist_eval.feature_frames(tables, tables, cut, root / "work")


def test_olist_seller_history_counts_only_arrivals_before_the_purchase_day(
    olist_frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = olist_frames
    both = pd.concat([train, test], ignore_index=True)
    tables = load_olist(write_olist_sample(tmp_path, n_orders=200, seed=5))
    arrivals = pd.DataFrame(
        {
            "node_id": tables.shipments["node_id"],
            "known": tables.facts["delivered_at"].dt.floor("D") + pd.Timedelta(days=1),
        }
    )
    for _, row in both.iterrows():
        seen = arrivals[
            (arrivals["node_id"] == row["node_id"]) & (arrivals["known"] <= row["event_timestamp"])
        ]
        expected = float(len(seen)) if len(seen) else np.nan
        assert row["node_deliveries"] == pytest.approx(expected, nan_ok=True)


def test_olist_cohort_level_uses_only_purchases_and_arrivals_before_the_day(
    olist_frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = olist_frames
    both = pd.concat([train, test], ignore_index=True)
    facts = load_olist(write_olist_sample(tmp_path, n_orders=200, seed=5)).facts
    checked = 0
    for _, row in both.iterrows():
        close = row["event_timestamp"].floor("D")
        cohort = facts[
            (facts["purchased_at"] >= close - pd.Timedelta(days=28))
            & (facts["purchased_at"] < close)
        ]
        arrived = cohort["delivered_at"] <= close
        seen = cohort["delivered_at"].where(arrived, close) - cohort["purchased_at"]
        expected = kaplan_meier_quantile(
            seen.dt.total_seconds().to_numpy() / 86400.0, arrived.to_numpy(), 0.5
        )
        orders = row["net_cohort_orders_28d"]
        assert orders == len(cohort) or (np.isnan(orders) and cohort.empty)
        assert row["net_cohort_days_p50_28d"] == pytest.approx(expected, nan_ok=True)
        checked += int(np.isfinite(expected))
    assert checked > len(both) // 2


def test_olist_split_respects_the_cut(olist_frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = olist_frames
    cut = pd.Timestamp("2018-03-01", tz="UTC")
    assert (train["event_timestamp"] < cut).all()
    assert (test["event_timestamp"] >= cut).all()
    assert train["distance_km"].notna().all()


def test_fresh_features_of_day_d_ignore_everything_after_d(tmp_path: Path) -> None:
    path = write_freshretail_sample(tmp_path / "c.parquet", stores=2, products=3, days=12)
    hourly = load_freshretail(path).hourly
    frame = fresh_eval.side_frame(hourly, tmp_path / "a")
    future = hourly["day"] >= pd.Timestamp("2024-04-03", tz="UTC")
    changed = hourly.copy()
    changed.loc[future, "stockout"] = 1 - changed.loc[future, "stockout"]
    changed.loc[future, "sales"] = changed.loc[future, "sales"] + 5.0
    other = fresh_eval.side_frame(changed, tmp_path / "b")
    past = frame["day"] < pd.Timestamp("2024-04-03", tz="UTC")
    # Everything but d+1's known calendar (and what is formed from it), plus the
    # hour-by-hour grid the repository still serves.
    known_tomorrow = {*CALENDAR, *fresh_eval.DERIVED}
    features = [
        f for f in (*fresh_eval.FEATURES, *fresh_views.HOUR_FEATURES) if f not in known_tomorrow
    ]
    pd.testing.assert_frame_equal(
        frame.loc[past, features].reset_index(drop=True),
        other.loc[past, features].reset_index(drop=True),
    )
    # The label of the last past day does move: it is d+1's outcome, not a feature.
    assert not frame.loc[past, "label"].equals(other.loc[past, "label"])


def test_fresh_feature_is_day_d_and_label_day_d_plus_1(tmp_path: Path) -> None:
    path = write_freshretail_sample(tmp_path / "c.parquet", stores=1, products=2, days=8)
    hourly = load_freshretail(path).hourly
    frame = fresh_eval.side_frame(hourly, tmp_path / "w")
    open_ = hourly[hourly["hour"].between(8, 21)]
    share = open_.groupby(["node_id", "sku", "day"])["stockout"].mean()
    keys = pd.MultiIndex.from_frame(frame[["node_id", "sku", "day"]])
    assert np.allclose(frame["so_share"], share.reindex(keys).to_numpy())
    next_keys = pd.MultiIndex.from_arrays(
        [frame["node_id"], frame["sku"], frame["day"] + pd.Timedelta(days=1)]
    )
    assert (frame["label"].to_numpy() == (share.reindex(next_keys).to_numpy() >= 0.5)).all()
    # d+1's announced discount against d's: tomorrow's price ratio minus today's.
    discount = hourly.groupby(["node_id", "sku", "day"])["discount"].mean()
    change = discount.reindex(next_keys).to_numpy() - discount.reindex(keys).to_numpy()
    assert np.allclose(frame["next_discount_change"], change)


def test_store_split_is_disjoint_and_seeded() -> None:
    nodes = [f"s{i}" for i in range(14)]
    train, test = fresh_eval.split_stores(nodes, seed=7)
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(nodes)
    assert fresh_eval.split_stores(nodes, seed=7) == (train, test)
