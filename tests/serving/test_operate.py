"""``routecast operate``: the backtest's world driver plays the outside world against the
service over HTTP, on a simulated clock, while the loop exports and refreshes features."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
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


def test_operate_drives_a_served_simulated_clock_and_waits_for_its_loop(
    demo_home: tuple[Settings, DemoReport], tmp_path: Path
) -> None:
    """``--url`` against a service started like ``routecast serve --simulated-clock
    --refresh-every 1d``: operate moves the service's time and its loop runs on it."""

    from serving import scheduler as scheduler_module
    from serving.cli.operate import in_process_service
    from serving.scheduler import Scheduler
    from serving.sim_clock import SimulatedClock

    base, _ = demo_home
    home = tmp_path / "home"
    shutil.copytree(base.home, home, ignore=shutil.ignore_patterns("ledger.db*"))
    served = base.model_copy(
        update={
            "home": home,
            "database_url": f"sqlite:///{home / 'ledger.db'}",
            "simulated_clock": True,
            "snapshot_refresh_seconds": 2.0,
            "model_reload_seconds": 2.0,
        }
    )
    clock = SimulatedClock()
    loop = Scheduler(served, refresh_every=timedelta(days=1), retrain_every=None, clock=clock)
    loop.waiting_for_clock = True
    scheduler_module.attach(loop)
    loop.start(poll_seconds=0.5)
    try:
        with in_process_service(served, clock) as (url, runtime):
            key = runtime.keys.create({"admin"}, "operate-test")
            env = {
                "ROUTECAST_HOME": str(home),
                "ROUTECAST_DATABASE_URL": served.database_url or "",
                "ROUTECAST_API_KEY": key,
            }
            args = ["operate", "--url", url, "--days", "1", "--json"]
            result = CliRunner().invoke(cli, args, env=env)
            assert result.exit_code == 0, result.output
            out = json.loads(result.stdout[result.stdout.index("{") :])
            (day,) = out["days"]
            # the service lives on the simulated day: its decisions, its loop, its clock
            assert runtime.clock() == datetime.fromisoformat(day["day"] + "T00:15:00+00:00") + (
                timedelta(days=1)
            )
            assert day["orders"] > 50 and day["degraded_decisions"] == 0
            assert 0.0 < day["feature_age_hours_max"] <= 24.0
            assert {"export", "features refresh"} <= set(day["loop_seconds"])
            assert [r.name for r in loop.runs] == ["export", "features refresh"]
            assert all(r.at == runtime.clock() and r.error is None for r in loop.runs)
            assert out["labels_from_api"]["allocation_rows"] >= day["orders"] - 5
            # after the refresh every row the service holds is from the closed day
            snap = runtime.snapshot
            assert snap is not None and snap.oldest_event is not None
            assert runtime.clock() - snap.oldest_event <= timedelta(hours=1)
    finally:
        loop.stop()
        scheduler_module.attach(None)
