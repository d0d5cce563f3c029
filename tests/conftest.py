"""Shared test helpers: service availability (skip locally, fail under CI=true)."""

from __future__ import annotations

import os
import socket

# Two test workers share two cores: one LightGBM thread each avoids OpenMP oversubscription.
os.environ.setdefault("ROUTECAST_LGBM_THREADS", "1")

import pytest

from serving.demo import DemoReport, build_demo
from serving.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip with a reason outside CI; fail under CI, where the service must be running."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true requires it; .ci/run starts it)")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture
def redis_available() -> None:
    require_service("Redis", "127.0.0.1", 6379)


@pytest.fixture
def postgres_available() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, DemoReport]:
    """One small demo world (features, models, registry) per test worker, built for real."""
    home = tmp_path_factory.mktemp("demo")
    settings = Settings(home=home, scale="small", seed=11)
    return settings, build_demo(settings, progress=False)
