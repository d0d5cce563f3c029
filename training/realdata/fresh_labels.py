"""The FreshRetailNet stockout label: next day's trading hours mostly out of stock.

Row (store, product, d) is labelled 1 when at least half of the hours 08:00-21:59 of day
d+1 were out of stock. Its features may use day d and earlier only; the known calendar of
d+1 (discount, holiday, activity) is attached here as request columns.
"""

from __future__ import annotations

import pandas as pd

from features.realdata.fresh_tables import KEYS, OPEN_HOURS, open_hours_share

_DAY = pd.Timedelta(days=1)
THRESHOLD = 0.5
CALENDAR = ("next_discount", "next_holiday", "next_activity", "next_weekday")


def next_day_rows(hourly: pd.DataFrame) -> pd.DataFrame:
    """Entity rows stamped at the close of d, with d+1's calendar and the label."""
    share = open_hours_share(hourly)
    share = share[share["open_hours"] > 0]
    calendar = (
        hourly[hourly["hour"].isin(OPEN_HOURS)]
        .groupby([*KEYS, "day"], sort=True)
        .agg(
            next_discount=("discount", "mean"),
            next_holiday=("holiday", "max"),
            next_activity=("activity", "max"),
        )
        .reset_index()
    )
    target = share.merge(calendar, on=[*KEYS, "day"], how="inner")
    target = target.assign(
        label=(target["so_share"] >= THRESHOLD).astype(int),
        next_weekday=target["day"].dt.weekday.astype(float),
        day=target["day"] - _DAY,
    ).rename(columns={"so_share": "next_so_share"})
    # Only days d that were themselves observed: their close is when the decision is made.
    observed = share[[*KEYS, "day"]]
    rows = target.merge(observed, on=[*KEYS, "day"], how="inner")
    rows["event_timestamp"] = rows["day"] + _DAY
    columns = ["event_timestamp", *KEYS, "day", *CALENDAR, "next_so_share", "label"]
    return rows[columns].sort_values(["event_timestamp", *KEYS]).reset_index(drop=True)
