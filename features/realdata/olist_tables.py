"""Olist feature tables, each row stamped when its information became known.

A delivery outcome is known when the parcel arrives, a seller's handling time when the
carrier collects it, so history rows carry those timestamps and a point-in-time join at
purchase time sees only outcomes that had already happened. Nothing here is keyed by the
purchase itself except through those later stamps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.realdata.survival import kaplan_meier_quantile

#: Brazil's 27 federative units; the code is the position (stable across datasets).
STATES = (
    "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT", "PA",
    "PB", "PE", "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP", "TO",
)  # fmt: skip
#: Profiles hold for the whole history, so they are stamped before any order.
PROFILE_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")
_DAY = pd.Timedelta(days=1)

NODE_PROFILE = "olist_node_profile"
NODE_HANDLING = "olist_node_handling"
NODE_DELIVERY = "olist_node_delivery"
LANE_DELIVERY = "olist_lane_delivery"
DEST_RECENT = "olist_dest_recent"
NETWORK_RECENT = "olist_network_recent"
NETWORK_COHORT = "olist_network_cohort"


def state_code(states: pd.Series) -> pd.Series:
    lookup = {s: i for i, s in enumerate(STATES)}
    return states.astype(str).str.upper().map(lookup).fillna(-1).astype(np.int64)


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def _history(shipments: pd.DataFrame, facts: pd.DataFrame) -> pd.DataFrame:
    frame = shipments.merge(facts, on="shipment_id", how="inner", validate="one_to_one")
    return frame.assign(
        handling_days=_days(frame["carrier_at"] - frame["approved_at"]).clip(lower=0.0),
        carrier_days=_days(frame["delivered_at"] - frame["carrier_at"]).clip(lower=0.0),
        late=(frame["delivered_at"] > frame["estimated_at"] + _DAY).astype(float),
    )


def _last_per_stamp(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per key and day, stamped at the day's close (midnight after it).

    Outcomes of a day become usable the next day: never earlier than they happened, and
    Feast's point-in-time join (a merge per key, then a time filter) stays small.
    """
    frame = frame.assign(event_timestamp=frame["event_timestamp"].dt.floor("D") + _DAY)
    frame = frame.drop_duplicates([*keys, "event_timestamp"], keep="last")
    return _with_sentinels(frame.reset_index(drop=True), keys)


def _with_sentinels(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Prepend an all-missing row per key at the epoch: 'no history yet'.

    Feast's file store drops an entity row when a key has feature rows but none at or
    before the entity's time; the sentinel always qualifies, so such rows come back with
    missing values (LightGBM's own missing branch) instead of vanishing.
    """
    sentinels = (
        frame[keys].drop_duplicates() if keys else pd.DataFrame(index=pd.RangeIndex(1))
    ).assign(event_timestamp=PROFILE_EPOCH)
    return pd.concat([sentinels, frame], ignore_index=True)[frame.columns]


def _expanding(frame: pd.DataFrame, key: str, column: str, how: str) -> pd.Series:
    rolled = frame.groupby(key, sort=False)[column].expanding()
    values = getattr(rolled, how)()
    return values.reset_index(level=0, drop=True).reindex(frame.index)


def _windowed(
    frame: pd.DataFrame, keys: list[str], column: str, window: str, q: float
) -> pd.Series:
    """Quantile ``q`` of ``column`` over the trailing time ``window`` ending at each row."""
    indexed = frame.set_index("event_timestamp")
    if keys:
        rolled = indexed.groupby(keys, sort=False)[column].rolling(window).quantile(q)
        values = rolled.to_numpy()
        order = frame.sort_values([*keys, "event_timestamp"], kind="stable").index
        return pd.Series(values, index=order).reindex(frame.index)
    return pd.Series(indexed[column].rolling(window).quantile(q).to_numpy(), index=frame.index)


def _count(frame: pd.DataFrame, keys: list[str], window: str) -> pd.Series:
    indexed = frame.set_index("event_timestamp").assign(_one=1.0)
    if keys:
        rolled = indexed.groupby(keys, sort=False)["_one"].rolling(window).sum()
        order = frame.sort_values([*keys, "event_timestamp"], kind="stable").index
        return pd.Series(rolled.to_numpy(), index=order).reindex(frame.index)
    return pd.Series(indexed["_one"].rolling(window).sum().to_numpy(), index=frame.index)


def node_profile(nodes: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_timestamp": PROFILE_EPOCH,
            "node_id": nodes["node_id"].astype(str),
            "node_lat": nodes["lat"].astype(float),
            "node_lon": nodes["lon"].astype(float),
            "origin_state_code": state_code(nodes["state"]),
        }
    )


def node_handling(history: pd.DataFrame) -> pd.DataFrame:
    """Seller's handling time (approval → carrier), known when the carrier collects."""
    frame = history.sort_values("carrier_at", kind="stable").reset_index(drop=True)
    frame = frame.assign(event_timestamp=frame["carrier_at"])
    recent = frame.groupby("node_id", sort=False)["handling_days"].transform(
        lambda s: s.rolling(5, min_periods=1).mean()
    )
    out = pd.DataFrame(
        {
            "event_timestamp": frame["event_timestamp"],
            "node_id": frame["node_id"],
            "node_handling_days_mean": _expanding(frame, "node_id", "handling_days", "mean"),
            "node_handling_days_recent": recent,
            "node_handovers": frame.groupby("node_id", sort=False).cumcount() + 1.0,
        }
    )
    return _last_per_stamp(out, ["node_id"])


def node_delivery(history: pd.DataFrame) -> pd.DataFrame:
    """Seller's delivery record, known when each of its parcels arrives."""
    frame = history.sort_values("delivered_at", kind="stable").reset_index(drop=True)
    frame = frame.assign(event_timestamp=frame["delivered_at"])
    out = pd.DataFrame(
        {
            "event_timestamp": frame["event_timestamp"],
            "node_id": frame["node_id"],
            "node_delivery_days_p50": _expanding(frame, "node_id", "delivery_days", "median"),
            "node_carrier_days_mean": _expanding(frame, "node_id", "carrier_days", "mean"),
            "node_late_rate": _expanding(frame, "node_id", "late", "mean"),
            "node_deliveries": frame.groupby("node_id", sort=False).cumcount() + 1.0,
        }
    )
    return _last_per_stamp(out, ["node_id"])


def lane_delivery(history: pd.DataFrame, window: str = "180D") -> pd.DataFrame:
    """State-to-state lane record over a trailing window of arrivals."""
    frame = history.sort_values("delivered_at", kind="stable").reset_index(drop=True)
    frame = frame.assign(event_timestamp=frame["delivered_at"])
    keys = ["origin_state", "dest_state"]
    out = pd.DataFrame(
        {
            "event_timestamp": frame["event_timestamp"],
            "origin_state": frame["origin_state"],
            "dest_state": frame["dest_state"],
            "lane_days_p50": _windowed(frame, keys, "delivery_days", window, 0.5),
            "lane_days_p90": _windowed(frame, keys, "delivery_days", window, 0.9),
            "lane_deliveries": _count(frame, keys, window),
        }
    )
    return _last_per_stamp(out, keys)


def dest_recent(history: pd.DataFrame, window: str = "30D") -> pd.DataFrame:
    """How long parcels into a state took lately: the regional drift signal."""
    frame = history.sort_values("delivered_at", kind="stable").reset_index(drop=True)
    frame = frame.assign(event_timestamp=frame["delivered_at"])
    out = pd.DataFrame(
        {
            "event_timestamp": frame["event_timestamp"],
            "dest_state": frame["dest_state"],
            "dest_days_p50_30d": _windowed(frame, ["dest_state"], "delivery_days", window, 0.5),
            "dest_carrier_days_p50_30d": _windowed(
                frame, ["dest_state"], "carrier_days", window, 0.5
            ),
            "dest_deliveries_30d": _count(frame, ["dest_state"], window),
        }
    )
    return _last_per_stamp(out, ["dest_state"])


def network_recent(history: pd.DataFrame, window: str = "14D") -> pd.DataFrame:
    """Network-wide level of the last weeks' arrivals: tracks the 2018 drift."""
    frame = history.sort_values("delivered_at", kind="stable").reset_index(drop=True)
    frame = frame.assign(event_timestamp=frame["delivered_at"])
    out = pd.DataFrame(
        {
            "event_timestamp": frame["event_timestamp"],
            "net_days_p50_14d": _windowed(frame, [], "delivery_days", window, 0.5),
            "net_days_p90_14d": _windowed(frame, [], "delivery_days", window, 0.9),
            "net_carrier_days_p50_14d": _windowed(frame, [], "carrier_days", window, 0.5),
            "net_late_rate_14d": frame.set_index("event_timestamp")["late"]
            .rolling(window)
            .mean()
            .to_numpy(),
        }
    )
    return _last_per_stamp(out, [])


def network_cohort(history: pd.DataFrame, window_days: int = 28) -> pd.DataFrame:
    """Network delivery-time quantiles of the last ``window_days`` of *purchases*.

    One row per day, stamped at its close T: purchases before T, each either arrived by
    T (its delivery days) or still travelling (at least T − purchase days), combined by
    Kaplan–Meier. Tracks a speed change weeks before arrival-based levels do.
    """
    purchased = _days(history["purchased_at"] - PROFILE_EPOCH).to_numpy()
    delivered = _days(history["delivered_at"] - PROFILE_EPOCH).to_numpy()
    order = np.argsort(purchased, kind="stable")
    purchased, delivered = purchased[order], delivered[order]
    first, last = np.floor(purchased.min()) + 1, np.floor(delivered.max()) + 1
    closes = np.arange(first, last + 1)
    lo = np.searchsorted(purchased, closes - window_days, side="left")
    hi = np.searchsorted(purchased, closes, side="left")
    rows = []
    for close, a, b in zip(closes, lo, hi, strict=True):
        bought, arrived = purchased[a:b], delivered[a:b]
        known = arrived <= close
        durations = np.where(known, arrived, close) - bought
        rows.append(
            (
                kaplan_meier_quantile(durations, known, 0.5),
                kaplan_meier_quantile(durations, known, 0.9),
                float(b - a),
            )
        )
    values = np.array(rows, dtype=float).reshape(-1, 3)
    out = pd.DataFrame(
        {
            "event_timestamp": PROFILE_EPOCH + pd.to_timedelta(closes, unit="D"),
            f"net_cohort_days_p50_{window_days}d": values[:, 0],
            f"net_cohort_days_p90_{window_days}d": values[:, 1],
            f"net_cohort_orders_{window_days}d": values[:, 2],
        }
    )
    return _with_sentinels(out, [])


def build_tables(
    nodes: pd.DataFrame, shipments: pd.DataFrame, facts: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Every Olist feature table from the adapter's output, by feature view name."""
    history = _history(shipments, facts)
    return {
        NODE_PROFILE: node_profile(nodes),
        NODE_HANDLING: node_handling(history),
        NODE_DELIVERY: node_delivery(history),
        LANE_DELIVERY: lane_delivery(history),
        DEST_RECENT: dest_recent(history),
        NETWORK_RECENT: network_recent(history),
        NETWORK_COHORT: network_cohort(history),
    }
