"""Closing a node for the rest of its local day: one closure to its midnight, ended ones dropped."""

from __future__ import annotations

from datetime import UTC, datetime

from routing import calendar_from_dict
from serving.ledger import NodeRecord
from serving.node_ops import closed_today


def test_close_today_ends_at_local_midnight_and_drops_ended_closures() -> None:
    rec = NodeRecord(
        "ST-1",
        "store",
        40.7,
        -74.0,
        timezone="America/New_York",
        calendar=[
            {
                "holidays": ["2026-12-25"],
                "closures": [
                    {"start": "2026-11-01T08:00", "end": "2026-11-02T08:00", "reason": "old"},
                    {"start": "2026-12-20T08:00", "end": "2026-12-21T08:00", "reason": "later"},
                ],
            }
        ],
    )
    now = datetime(2026, 12, 1, 20, 30, tzinfo=UTC)  # 15:30 in New York
    doc = closed_today(rec, now, "flooded")
    assert doc["holidays"] == ["2026-12-25"]
    assert [c["reason"] for c in doc["closures"]] == ["later", "flooded"]
    assert doc["closures"][-1] == {
        "start": "2026-12-01T15:30:00",
        "end": "2026-12-02T00:00:00",
        "reason": "flooded",
    }
    cal = calendar_from_dict(doc)
    assert cal.status(now, rec.timezone, require_open_now=False) is not None
    assert rec.calendar[0]["closures"][0]["reason"] == "old"  # the stored record is untouched
