"""The simulated clock a driver sets over HTTP: off unless the service was started with it,
forward only once started, and the embedded loop counts its periods from the first time set."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from serving import scheduler as scheduler_module
from serving.demo import DemoReport
from serving.scheduler import EXPORT, FEATURES, Scheduler
from serving.settings import Settings
from serving.sim_clock import SimulatedClock, shared_clock
from tests.support.apps import api_client

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

T0 = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def own_demo(
    demo_home: tuple[Settings, DemoReport], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    settings, _ = demo_home
    home = tmp_path_factory.mktemp("clock") / "home"
    shutil.copytree(settings.home, home, ignore=shutil.ignore_patterns("ledger.db*"))
    return settings.model_copy(update={"home": home})


@pytest.fixture
def loop(own_demo: Settings) -> Iterator[Scheduler]:
    sched = Scheduler(
        own_demo, refresh_every=timedelta(days=1), retrain_every=None, clock=shared_clock()
    )
    sched.waiting_for_clock = True
    scheduler_module.attach(sched)
    yield sched
    scheduler_module.attach(None)


def test_the_wall_clock_service_refuses_a_time(own_demo: Settings) -> None:
    with api_client(own_demo, f"sqlite:///{own_demo.home / 'wall.db'}") as (client, runtime):
        assert not isinstance(runtime.clock, SimulatedClock)
        got = client.get("/v1/admin/clock").json()
        assert got["simulated"] is False
        r = client.put("/v1/admin/clock", json={"now": T0.isoformat()})
        assert r.status_code == 409 and r.json()["field"] == "now"
        assert abs(runtime.clock() - datetime.now(UTC)) < timedelta(minutes=1)
        assert client.get("/v1/admin/loop").json() == {"attached": False}


def test_a_simulated_service_moves_only_forward_and_starts_its_loop(
    own_demo: Settings, loop: Scheduler
) -> None:
    url = f"sqlite:///{own_demo.home / 'sim.db'}"
    with api_client(own_demo, url, simulated_clock=True) as (client, runtime):
        assert runtime.clock is shared_clock()
        waiting = client.get("/v1/admin/loop").json()
        assert waiting["attached"] and waiting["waiting_for_clock"] and waiting["due"] == []
        assert loop.tick() == []  # nothing runs before the world's first morning is set

        r = client.put("/v1/admin/clock", json={"now": T0.isoformat()})
        assert r.status_code == 200, r.text
        assert r.json() == {"simulated": True, "started": True, "now": T0.isoformat()}
        assert runtime.clock() == T0 and loop.last == {EXPORT: T0, FEATURES: T0}

        back = client.put("/v1/admin/clock", json={"now": (T0 - timedelta(hours=1)).isoformat()})
        assert back.status_code == 409 and back.json()["field"] == "now"
        naive = client.put("/v1/admin/clock", json={"now": "2026-03-02T06:00:00"})
        assert naive.status_code == 422
        assert runtime.clock() == T0

        later = T0 + timedelta(days=1, minutes=15)
        client.put("/v1/admin/clock", json={"now": later.isoformat()})
        status: dict[str, Any] = client.get("/v1/admin/loop").json()
        assert status["due"] == [EXPORT, FEATURES] and status["running"] is None
        # the service's decisions read the simulated time too
        assert client.get("/readyz").json()["now"] == later.isoformat()


@pytest.fixture(autouse=True)
def fresh_shared_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with a clock nobody has set."""
    monkeypatch.setattr("serving.sim_clock._shared", None)


def test_serve_simulated_hands_uvicorn_an_app_on_the_shared_clock(
    own_demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``routecast serve --simulated-clock`` builds its one process's app on the clock its
    loop reads, instead of passing the setting through the environment."""
    import os

    import uvicorn
    from typer.testing import CliRunner

    from serving.cli import app as cli
    from serving.settings import get_settings

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    monkeypatch.setenv("ROUTECAST_HOME", str(own_demo.home))
    monkeypatch.setenv("ROUTECAST_DATABASE_URL", f"sqlite:///{own_demo.home / 'serve.db'}")
    monkeypatch.setenv("ROUTECAST_JSON_LOGS", "0")
    monkeypatch.delenv("ROUTECAST_SIMULATED_CLOCK", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve", "--simulated-clock", "--port", "1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert served["app"].state.runtime.clock is shared_clock()
    assert "ROUTECAST_SIMULATED_CLOCK" not in os.environ
