"""Within-day features of day d: state at close, restocks, evening sales, profile, rhythm."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.realdata.fresh_tables import build_tables


def _hourly(flags_by_day: list[np.ndarray], sales: float = 1.0) -> pd.DataFrame:
    frames = []
    for i, flags in enumerate(flags_by_day):
        frames.append(
            pd.DataFrame(
                {
                    "node_id": "s1",
                    "sku": "p1",
                    "day": pd.Timestamp("2024-04-01", tz="UTC") + pd.Timedelta(days=i),
                    "hour": np.arange(24),
                    "stockout": flags,
                    "sales": np.where(flags == 1, 0.0, sales),
                    "discount": 1.0,
                    "activity": 0,
                    "category_1": 1,
                    "category_2": 2,
                    "category_3": 3,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _series(flags_by_day: list[np.ndarray]) -> pd.DataFrame:
    return build_tables(_hourly(flags_by_day))["fresh_series_daily"]


def test_empty_from_noon_to_close() -> None:
    flags = np.zeros(24, dtype=int)
    flags[12:] = 1
    row = _series([flags]).iloc[0]
    assert row["so_trail_hours"] == 12
    assert row["last_instock_hour"] == 11
    assert row["restocks"] == 0
    assert row["evening_sales"] == 0.0
    assert row["so_morning"] == 0.0


def test_refilled_in_the_afternoon() -> None:
    flags = np.zeros(24, dtype=int)
    flags[9:15] = 1  # empty 09:00-14:59, refilled at 15:00
    row = _series([flags]).iloc[0]
    assert row["restocks"] == 1
    assert row["so_trail_hours"] == 0
    assert row["last_instock_hour"] == 21  # last trading hour, not 23
    assert row["so_morning"] == pytest.approx(3 / 4)
    assert row["evening_sales"] == 6.0  # hours 18-23 in stock, one unit each


def test_never_in_stock_during_trading_hours() -> None:
    row = _series([np.ones(24, dtype=int)]).iloc[0]
    assert row["so_trail_hours"] == 24
    assert row["last_instock_hour"] == 7


def test_hourly_profile_counts_hours_usually_empty_over_the_week() -> None:
    empty_afternoon = np.zeros(24, dtype=int)
    empty_afternoon[15:22] = 1  # 7 of the 14 trading hours
    series = _series([np.zeros(24, dtype=int), empty_afternoon, empty_afternoon])
    assert series["profile_hours_empty_7d"].tolist() == pytest.approx([0.0, 0.5, 0.5])
    # Each empty afternoon ends with a refill at 22:00; the weekly mean includes day one.
    assert series["restocks_7d"].tolist() == pytest.approx([0.0, 0.5, 2 / 3])
    assert (series["event_timestamp"] == series["event_timestamp"].sort_values()).all()


def test_rhythm_of_a_shelf_refilled_in_the_afternoon() -> None:
    flags = np.zeros(24, dtype=int)
    flags[9:15] = 1  # empties at 09:00, refilled at 15:00
    row = _series([flags]).iloc[0]
    assert row["empty_hour"] == 9 and row["refill_hour"] == 15
    assert row["first_sale_hour"] == 0 and row["last_sale_hour"] == 23
    assert row["am_sales_share"] == pytest.approx(9 / 18, abs=1e-3)  # 9 of 18 sales before noon


def test_target_encodings_count_only_days_already_closed() -> None:
    empty = np.ones(24, dtype=int)
    full = np.zeros(24, dtype=int)
    days = [empty, full, full, empty]
    series = _series(days)
    assert series["te_series_all"].tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.5])
    # Day d's row never changes with what happens later: nothing looks ahead.
    later = [c for c in series.columns if c != "event_timestamp"]
    for cut in (1, 2, 3):
        head = _series(days[:cut])
        pd.testing.assert_frame_equal(head[later], series[later].iloc[:cut], check_dtype=False)


def test_each_trading_hour_its_state_weekly_share_and_sales() -> None:
    empty_afternoon = np.zeros(24, dtype=int)
    empty_afternoon[15:22] = 1
    days = [np.zeros(24, dtype=int), empty_afternoon]
    series = _series(days)
    assert series["so_h15"].tolist() == [0.0, 1.0]
    assert series["so_h14"].tolist() == [0.0, 0.0]
    assert series["so_h15_7d"].tolist() == pytest.approx([0.0, 0.5])
    assert series["sales_h15_7d"].tolist() == pytest.approx([1.0, 0.5])
    assert "so_h07" not in series and "so_h22" not in series  # trading hours only
    head = _series(days[:1])
    assert head["so_h15_7d"].iloc[0] == series["so_h15_7d"].iloc[0]  # nothing looks ahead


def test_fading_memory_and_the_shelf_after_closing() -> None:
    empty = np.ones(24, dtype=int)
    refilled_late = np.ones(24, dtype=int)
    refilled_late[23] = 0  # empty all day, back in stock by 23:00
    series = _series([empty, refilled_late, np.zeros(24, dtype=int)])
    # Pandas' adjusted EWM: weight 0.5 ** (age / half-life) on each earlier day's share.
    for h in (2, 5, 14):
        w = 0.5 ** (np.arange(3) / h)
        expected = [1.0, (w[0] + w[1]) / w[:2].sum(), (w[1] + w[2]) / w.sum()]
        assert series[f"so_share_ewm{h}"].tolist() == pytest.approx(expected)
    assert series["so_night_h22"].tolist() == [1.0, 1.0, 0.0]
    assert series["so_night_h23"].tolist() == [1.0, 0.0, 0.0]
    assert series["discount_7d"].tolist() == pytest.approx([1.0, 1.0, 1.0])
