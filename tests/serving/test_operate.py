"""``routecast operate``: the backtest's world driver plays the outside world against the
service over HTTP, on a simulated clock, while the loop exports and refreshes features."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app as cli
from serving.demo import DemoReport
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

KEYS = {
    "days",
    "max_feature_age_hours",
    "challengers_trained",
    "promotions",
    "promise_coverage",
    "p50_mae_days",
    "labels_from_api",
}


def test_two_operated_days_feed_labels_promises_and_fresh_features(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    base, _ = demo_home
    home = tmp_path / "home"
    shutil.copytree(base.home, home, ignore=shutil.ignore_patterns("ledger.db*"))
    env = {
        "ROUTECAST_HOME": str(home),
        "ROUTECAST_DATABASE_URL": f"sqlite:///{home / 'ledger.db'}",
    }
    args = ["operate", "--days", "2", "--retrain-every", "never", "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    assert set(out) >= KEYS
    day1, day2 = out["days"]
    for day in (day1, day2):
        assert day["orders"] > 50
        assert 0.0 <= day["rejection_rate"] < 0.5
        assert set(day["models"]) == {base.stockout_model, base.delivery_model}
        # the live feed and the nightly refresh keep the served features within a day
        assert day["feature_age_hours_max"] <= 24.0
    assert "export" in day1["loop_seconds"] and "features refresh" in day1["loop_seconds"]
    # parcels shipped on day 1 that arrived on day 2 were confirmed and checked
    assert day2["deliveries_confirmed"] > 0 and day2["on_time_rate"] is not None
    assert out["promise_deliveries"] == day1["deliveries_confirmed"] + day2["deliveries_confirmed"]
    assert 0.0 <= out["promise_coverage"] <= 1.0 and out["p50_mae_days"] >= 0.0
    # day 1 was closed and exported: its allocations (with rejections) became labels
    labels = out["labels_from_api"]
    assert labels["allocation_rows"] >= day1["orders"] - 5
    assert labels["rejection_labels"] >= 1
    assert out["challengers_trained"] == 0 and out["promotions"] == []
