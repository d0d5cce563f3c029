"""Session fixtures: service availability (skip locally, fail under CI=true), the demo world."""

from __future__ import annotations

import os

# Two test workers share two cores: one LightGBM thread each avoids OpenMP oversubscription.
os.environ.setdefault("ROUTECAST_LGBM_THREADS", "1")

import pytest

from serving.demo import DemoReport, build_demo
from serving.settings import Settings
from tests.support.services import require_postgres, require_redis


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
