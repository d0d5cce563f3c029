"""The stockout label: day d+1, hours 08:00-21:59, at least half of them out of stock."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.realdata.fresh_labels import next_day_rows


def _hourly(flags_by_day: list[np.ndarray]) -> pd.DataFrame:
    frames = []
    for i, flags in enumerate(flags_by_day):
        day = pd.Timestamp("2024-04-01", tz="UTC") + pd.Timedelta(days=i)
        frames.append(
            pd.DataFrame(
                {
                    "node_id": "s1",
                    "sku": "p1",
                    "day": day,
                    "hour": np.arange(24),
                    "stockout": flags,
                    "discount": 0.7 if i == 1 else 1.0,
                    "holiday": int(i == 2),
                    "activity": 0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _flags(open_out: int, outside: bool = False) -> np.ndarray:
    flags = np.zeros(24, dtype=int)
    flags[8 : 8 + open_out] = 1
    if outside:
        flags[:8] = 1
        flags[22:] = 1
    return flags


def test_half_of_trading_hours_is_the_threshold() -> None:
    rows = next_day_rows(_hourly([_flags(0), _flags(7), _flags(6), _flags(0)]))
    assert rows["label"].tolist() == [1, 0, 0]  # d+1 = day 1 (7/14), day 2 (6/14), day 3


def test_hours_outside_08_to_22_do_not_count() -> None:
    rows = next_day_rows(_hourly([_flags(0), _flags(6, outside=True)]))
    assert rows["label"].tolist() == [0]


def test_row_is_stamped_at_close_of_d_with_next_days_calendar() -> None:
    rows = next_day_rows(_hourly([_flags(0), _flags(14), _flags(0)]))
    first = rows.iloc[0]
    assert first["event_timestamp"] == pd.Timestamp("2024-04-02", tz="UTC")
    assert first["day"] == pd.Timestamp("2024-04-01", tz="UTC")
    assert first["next_discount"] == 0.7
    assert rows.iloc[1]["next_holiday"] == 1
    assert len(rows) == 2  # the last day has no d+1
