"""One short small world per test session, shared read-only by the behavioural tests."""

from __future__ import annotations

import sys
from pathlib import Path

# `pytest` (not `python -m pytest`) puts tests/ first on sys.path, where tests/simulation
# would shadow the real package as a namespace package; the repo root must come first.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sim_world import DAYS, END  # noqa: E402

from features.contracts.raw import TABLES  # noqa: E402
from simulation import WorldSummary, generate_world  # noqa: E402


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldSummary:
    return generate_world(
        tmp_path_factory.mktemp("world"), scale="small", seed=3, end=END, days=DAYS
    )


@pytest.fixture(scope="session")
def tables(world: WorldSummary) -> dict[str, pd.DataFrame]:
    frames = {name: pd.read_parquet(path) for name, path in world.tables.items()}
    frames["true_inventory"] = pd.read_parquet(world.truth_path)
    assert set(frames) == {*TABLES, "true_inventory"}
    return frames
