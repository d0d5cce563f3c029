"""Live node×SKU rows built from ledger stock: the same contract as the daily table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from features import catalog
from features.compute import MIN_VELOCITY
from features.contracts.feature_tables import validate_features
from features.push import LiveStock, live_inventory_frame

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_live_rows_take_stock_from_the_ledger_and_pace_from_the_batch_row() -> None:
    carried = {
        ("DC-1", "SKU-A"): {
            "sales_velocity_7d": 2.0,
            "sales_velocity_28d": 1.5,
            "stockout_days_28d": 3.0,
            "days_since_count": 9.0,
            "hours_since_count": 222.0,
            "rejections_7d": 2.0,
            "on_hand": 999.0,
        }
    }
    stock = [
        LiveStock(
            "DC-1", "sku-a", 10, NOW - timedelta(days=2, hours=3), reserved=4, new_rejections=1
        ),
        LiveStock("DC-1", "SKU-B", 0, None),
    ]
    frame = validate_features(
        catalog.VIEW_NODE_SKU_INVENTORY, live_inventory_frame(stock, carried, NOW)
    )
    a, b = frame.to_dict(orient="records")
    assert (a["on_hand"], a["days_since_count"], a["days_of_cover"]) == (10, 2, 5.0)
    assert (a["sales_velocity_28d"], a["stockout_days_28d"]) == (1.5, 3)
    assert a["event_timestamp"] == NOW
    # the ledger's reservations and exact count age; one new rejection on the batch's two
    assert (a["available"], a["reserved"], a["hours_since_count"]) == (6, 4, 51.0)
    assert a["rejections_7d"] == 3
    # a pair the batch table never saw: no pace, cover from the floored pace
    assert (b["on_hand"], b["sales_velocity_7d"], b["days_since_count"]) == (0, 0.0, 0)
    assert (b["available"], b["reserved"], b["hours_since_count"], b["rejections_7d"]) == (
        0,
        0,
        0.0,
        0,
    )
    assert b["days_of_cover"] == 0 / MIN_VELOCITY
