"""The on-time rule shared by the promise monitor and the console's KPIs (one home:
``serving.ledger.promise_outcomes``): a parcel is judged by its own leg's date, else the order's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serving.ledger.promise_outcomes import delivered_on_time, local_date, outcome_of

PROMISE = {
    "timezone": "America/Sao_Paulo",
    "deliver_p50": "2026-03-05",
    "deliver_by": "2026-03-07",
    "shipments": [{"node_id": "DC1", "deliver_p50": "2026-03-04", "deliver_by": "2026-03-05"}],
}


def test_leg_date_decides_for_a_named_node() -> None:
    # 2026-03-06 01:00 UTC is still 5 March in São Paulo (UTC-3): on time for DC1's leg.
    assert delivered_on_time(PROMISE, "DC1", datetime(2026, 3, 6, 1, tzinfo=UTC)) is True
    assert delivered_on_time(PROMISE, "DC1", datetime(2026, 3, 6, 4, tzinfo=UTC)) is False


def test_unnamed_node_is_judged_by_the_order_date() -> None:
    # a reroute to a node the promise does not name: the order's deliver_by (7 March) applies
    assert delivered_on_time(PROMISE, "STORE9", datetime(2026, 3, 6, 12, tzinfo=UTC)) is True
    assert delivered_on_time(PROMISE, "STORE9", datetime(2026, 3, 8, 12, tzinfo=UTC)) is False


def test_no_promise_is_not_scored() -> None:
    assert delivered_on_time(None, "DC1", datetime(2026, 3, 6, tzinfo=UTC)) is None
    assert delivered_on_time({"timezone": "UTC"}, "DC1", datetime(2026, 3, 6, tzinfo=UTC)) is None


def test_monitor_and_console_agree() -> None:
    plan = {"decision": {"promise": PROMISE}}
    for node in ("DC1", "STORE9"):
        for hour in range(0, 24 * 4, 5):
            at = datetime(2026, 3, 4, tzinfo=UTC) + timedelta(hours=hour)
            out = outcome_of(plan, "S1", "O1", node, at)
            assert out is not None
            assert out.on_time is delivered_on_time(PROMISE, node, at)


def test_unknown_zone_falls_back_to_utc() -> None:
    at = datetime(2026, 3, 6, 1, tzinfo=UTC)
    assert local_date(at, "Mars/Olympus").isoformat() == "2026-03-06"
