"""Backtest: policies played against one simulated world, scored against a perfect-foresight bound.

``WorldDriver`` (``world.py``) is the world a decision-maker plays; ``run_backtest``
(``harness.py``) plays it through routing and the ledger; ``summarise`` (``kpis.py``) scores;
``bound.py`` is the perfect-foresight yardstick and ``report.py`` writes the report.
"""

from simulation.backtest.harness import (
    BACKTEST_START,
    POLICIES,
    BacktestSpec,
    BoundPlanner,
    Planner,
    PolicyJob,
    PolicyRun,
    Prepared,
    prepare,
    run_backtest,
    run_foresight,
    run_policy,
    write_json,
)
from simulation.backtest.kpis import KPI_NAMES, DayTally, day_kpis, summarise
from simulation.backtest.world import (
    DayOrders,
    DayOutcome,
    PickAnswer,
    TruthAtDecision,
    WorldDriver,
    keyed_uniform,
    sim_time,
)

__all__ = [
    "BACKTEST_START",
    "KPI_NAMES",
    "POLICIES",
    "BacktestSpec",
    "BoundPlanner",
    "DayOrders",
    "DayOutcome",
    "DayTally",
    "PickAnswer",
    "Planner",
    "PolicyJob",
    "PolicyRun",
    "Prepared",
    "TruthAtDecision",
    "WorldDriver",
    "day_kpis",
    "keyed_uniform",
    "prepare",
    "run_backtest",
    "run_foresight",
    "run_policy",
    "sim_time",
    "summarise",
    "write_json",
]
