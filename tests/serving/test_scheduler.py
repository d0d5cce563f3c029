"""The embedded loop: steps run when their period has passed on the clock, each is also a
plain command, and a failing step is retried without stopping the loop."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app as cli
from serving.demo import DemoReport
from serving.scheduler import EXPORT, FEATURES, RETRAIN, Scheduler
from serving.settings import Settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]


@pytest.fixture(scope="module")
def home(
    demo_home: tuple[Settings, DemoReport], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    base, _ = demo_home
    home = tmp_path_factory.mktemp("loop") / "home"
    shutil.copytree(base.home, home, ignore=shutil.ignore_patterns("ledger.db*"))
    return base.model_copy(update={"home": home, "database_url": f"sqlite:///{home / 'ledger.db'}"})


def test_due_steps_follow_the_clock() -> None:
    s = Settings(home=Path("/nonexistent"))
    sched = Scheduler(s, refresh_every=timedelta(hours=1), retrain_every=timedelta(days=1))
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    assert sched.due(t0) == [EXPORT, FEATURES, RETRAIN]
    sched.last = {EXPORT: t0, FEATURES: t0, RETRAIN: t0}
    assert sched.due(t0 + timedelta(minutes=59)) == []
    assert sched.due(t0 + timedelta(hours=1)) == [EXPORT, FEATURES]
    # a due retrain exports and refreshes first, whatever their own periods say
    sched.last = {EXPORT: t0 + timedelta(hours=23, minutes=30), FEATURES: t0, RETRAIN: t0}
    assert sched.due(t0 + timedelta(days=1)) == [EXPORT, FEATURES, RETRAIN]
    never = Scheduler(s, refresh_every=timedelta(minutes=5), retrain_every=None)
    assert never.due(t0) == [EXPORT, FEATURES]
    with pytest.raises(ValueError):
        Scheduler(s, refresh_every=timedelta(0))


def test_a_failing_step_is_recorded_and_retried(tmp_path: Path) -> None:
    bad = Settings(home=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    sched = Scheduler(bad, refresh_every=timedelta(seconds=1), retrain_every=None)
    (run,) = sched.tick(datetime(2026, 12, 1, tzinfo=UTC))  # features wait for the export
    assert run.name == EXPORT and run.error is not None
    assert EXPORT not in sched.last
    assert [r.name for r in sched.tick(datetime(2026, 12, 1, tzinfo=UTC))] == [EXPORT]


def test_loop_runs_on_a_short_interval_in_the_background(home: Settings) -> None:
    sched = Scheduler(home, refresh_every=timedelta(seconds=1), retrain_every=None)
    sched.start(poll_seconds=0.2)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if sum(1 for r in sched.runs if r.name == FEATURES) >= 2:
                break
            time.sleep(0.5)
    finally:
        sched.stop()
    names = [r.name for r in sched.runs]
    assert names[:4] == [EXPORT, FEATURES, EXPORT, FEATURES], names
    assert all(r.error is None for r in sched.runs), [r.error for r in sched.runs]
    feats = next(r for r in sched.runs if r.name == FEATURES)
    assert set(feats.detail["steps"]) == {
        "merge history",
        "compute feature tables",
        "feast apply + materialize",
    }
    assert feats.detail["merged"]["allocations"] > 0
    assert (home.data_dir / "merged" / "allocations.parquet").exists()


def test_each_step_is_a_plain_command(home: Settings) -> None:
    env = {"ROUTECAST_HOME": str(home.home), "ROUTECAST_DATABASE_URL": home.database_url or ""}
    runner = CliRunner()
    once = runner.invoke(
        cli, ["loop", "--refresh-every", "1h", "--retrain-every", "never", "--once"], env=env
    )
    assert once.exit_code == 0, once.output
    assert "export:" in once.output and "features refresh:" in once.output
    refresh = runner.invoke(cli, ["features", "refresh"], env=env)
    assert refresh.exit_code == 0, refresh.output
    assert "compute feature tables" in refresh.output and "total" in refresh.output
    bad = runner.invoke(cli, ["loop", "--refresh-every", "soon"], env=env)
    assert bad.exit_code == 2 and "duration" in bad.output
