"""Session fixtures: service availability (skip locally, fail under CI=true), the demo world."""

from __future__ import annotations

import os
from collections.abc import Iterator

# Two test workers share two cores: one LightGBM thread each avoids OpenMP oversubscription.
os.environ.setdefault("ROUTECAST_LGBM_THREADS", "1")

import pytest

from serving.demo import DemoReport, build_demo
from serving.settings import Settings, get_settings
from tests.support.services import require_postgres, require_redis


@pytest.fixture(autouse=True)
def _settings_from_this_test() -> Iterator[None]:
    """The CLI reads ``get_settings()``, cached per process: a test that invoked a command with
    its own ROUTECAST_HOME must not hand its home and ledger to the next test's command."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def redis_available() -> None:
    require_redis()


@pytest.fixture
def postgres_available() -> None:
    require_postgres()


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemoReport]:
    """One small demo world (features, models, registry) per test worker, built for real."""
    home = tmp_path_factory.mktemp("demo")
    settings = Settings(home=home, scale="small", seed=11)
    return settings, build_demo(settings, progress=False)
