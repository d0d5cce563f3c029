"""The ledger's day, exported as canonical tables: labels from rejections and deliveries, stock
replayed to each close; a second export of the same days writes the same files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from ledger_testkit import T0, Clock
from sqlalchemy import Engine

from features.contracts.raw import validate
from serving.history_export import (
    ALLOCATION_COLUMNS,
    SHIPMENT_COLUMNS,
    export_history,
    read_exported,
)
from serving.ledger import DeliveryEvent, Ledger

PLAN = {
    "request": {"destination": {"country": "US", "postal_code": "10001"}},
    "decision": {
        "promise": {"timezone": "America/New_York", "deliver_by": "2025-03-13"},
    },
}


@pytest.fixture
def a_day_of_operations(ledger: Ledger, clock: Clock) -> Ledger:
    ledger.reserve_order("o1", [("l1", "dc1", "A", 2)], request_hash="h1", plan=PLAN)
    ledger.reserve_order("o2", [("l1", "st2", "B", 1)], request_hash="h2", plan=PLAN)
    clock.advance(hours=1)
    ledger.reject_allocation("o2", "st2", ["l1"], "not_in_stock")
    clock.advance(hours=1)
    ledger.ship_order("o1", carrier="UPS", tracking_number="1Z")
    clock.advance(days=3)
    ledger.confirm_deliveries(
        "o1", [DeliveryEvent("ev1", T0 + timedelta(days=2, hours=6), shipment_id="o1-S1")]
    )
    return ledger


def _files(out: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(out)): pd.read_parquet(p) for p in sorted(out.rglob("*.parquet"))}


def test_export_writes_canonical_days_and_is_idempotent(
    a_day_of_operations: Ledger, engine: Engine, tmp_path: Path
) -> None:
    day0 = T0.date()
    first = export_history(
        engine, tmp_path, since=day0 - timedelta(days=1), until=day0 + timedelta(3)
    )
    assert first.days == [day0 + timedelta(k) for k in range(-1, 3)]
    assert first.rows["allocations"] == 2 and first.rows["shipments"] == 1

    allocations = validate("allocations", read_exported(tmp_path, "allocations"))
    by_order = allocations.set_index("order_id")
    assert bool(by_order.loc["o2", "rejected"]) and by_order.loc["o2", "reason"] == "not_in_stock"
    assert not bool(by_order.loc["o1", "rejected"])
    assert by_order.loc["o1", "dest_region"] == "NY"

    (ship,) = validate("shipments", read_exported(tmp_path, "shipments")).to_dict("records")
    assert (ship["shipment_id"], ship["carrier"]) == ("o1-S1", "UPS")
    assert ship["delivery_days"] == pytest.approx(2.25)
    assert ship["promised_days"] > ship["delivery_days"]  # end of 13 March in New York
    assert (tmp_path / "ledger" / "shipments" / f"{day0 + timedelta(2)}.parquet").exists()

    stock = validate("inventory_snapshots", read_exported(tmp_path, "inventory_snapshots"))
    close0 = stock[stock["event_timestamp"].dt.date == day0].set_index(["node_id", "sku"])
    assert close0.loc[("dc1", "A"), "on_hand"] == 8  # 10 counted, 2 shipped
    assert close0.loc[("st2", "B"), "on_hand"] == 0  # the rejection said none were there
    assert close0.loc[("dc1", "A"), "days_since_count"] == 1
    demand = validate("demand", read_exported(tmp_path, "demand"))
    assert demand[["node_id", "sku", "units"]].values.tolist() == [["dc1", "A", 2]]

    before = _files(tmp_path)
    again = export_history(
        engine, tmp_path, since=day0 - timedelta(days=1), until=day0 + timedelta(3)
    )
    assert again.rows == first.rows
    after = _files(tmp_path)
    assert before.keys() == after.keys()
    for name, frame in before.items():
        pd.testing.assert_frame_equal(frame, after[name])


def test_cli_export_carries_on_after_the_last_exported_day(
    a_day_of_operations: Ledger, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from serving.cli import app
    from serving.settings import Settings, get_settings

    day0 = T0.date()
    raw = Settings(home=tmp_path).raw_dir
    export_history(engine, raw, since=day0, until=day0 + timedelta(days=1))
    monkeypatch.setenv("ROUTECAST_HOME", str(tmp_path))
    monkeypatch.setenv("ROUTECAST_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app, ["history", "export", "--until", str(day0 + timedelta(days=3))]
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"{day0 + timedelta(1)} … {day0 + timedelta(2)}" in result.output
    assert (raw / "ledger" / "shipments" / f"{day0 + timedelta(2)}.parquet").exists()
    bad = CliRunner().invoke(app, ["history", "export", "--since", "yesterday"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output


def test_ledger_labels_join_the_next_training_set(
    a_day_of_operations: Ledger, engine: Engine, tmp_path: Path
) -> None:
    from serving.history_export import merge_history
    from training.datasets import delivery_entities, stockout_entities

    raw, merged = tmp_path / "raw", tmp_path / "merged"
    raw.mkdir()
    then = pd.Timestamp("2025-03-01T10:00:00Z")
    simulated = {
        "allocations": pd.DataFrame(
            [[then, "sim-1", "s1", "dc1", "A", 1, "NY", 40.7, -74.0, False, None]],
            columns=ALLOCATION_COLUMNS,
        ),
        "shipments": pd.DataFrame(
            [[then, "sim-s1", "s1", "dc1", "NY", 40.7, -74.0, "UPS", 3.0, 4.0]],
            columns=SHIPMENT_COLUMNS,
        ),
    }
    for name, frame in simulated.items():
        validate(name, frame).to_parquet(raw / f"{name}.parquet", index=False)
    export_history(engine, raw, since=T0.date(), until=T0.date() + timedelta(days=3))
    export_history(engine, raw, since=T0.date(), until=T0.date() + timedelta(days=3))  # again
    counts = merge_history(raw, merged)
    assert counts == {"allocations": 3, "shipments": 2}

    stockout = stockout_entities(merged)
    ledger_rows = stockout[stockout["event_timestamp"] >= pd.Timestamp(T0)]
    assert len(stockout) == 3 and len(ledger_rows) == 2
    keys = sorted(
        zip(ledger_rows["node_id"], ledger_rows["sku"], ledger_rows["label"], strict=True)
    )
    assert keys == [("dc1", "A", 0), ("st2", "B", 1)]  # the API's rejection is a stock-out label
    delivery = delivery_entities(merged)
    assert len(delivery) == 2
    got = delivery[delivery["event_timestamp"] >= pd.Timestamp(T0)]
    assert got[["node_id", "dest_region"]].values.tolist() == [["dc1", "NY"]]
    assert got["label"].tolist() == pytest.approx([2.25])
