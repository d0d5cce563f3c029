"""End-to-end backtest on a small world: real models from MLflow, real ledger, real routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from routing import Mode
from serving.cli import app
from serving.decide import decide
from simulation.backtest import (
    BacktestSpec,
    BoundPlanner,
    PolicyJob,
    PolicyRun,
    Prepared,
    WorldDriver,
    keyed_uniform,
    prepare,
    run_foresight,
    run_policy,
    summarise,
)
from simulation.backtest.harness import PointInTimeFeatures

pytestmark = pytest.mark.xdist_group("backtest")

SEED = 5
HISTORY = 21


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backtest")


@pytest.fixture(scope="module")
def prepared(work: Path) -> Prepared:
    spec = BacktestSpec(
        scale="small", seed=SEED, history_days=HISTORY, work_dir=work, progress=False
    )
    return prepare(spec)


def riskiest(body: Any, runtime: Any, **kw: Any) -> dict[str, Any]:
    """A deliberately bad policy: each line to the eligible node the model finds riskiest."""
    every = {"mode": Mode.PREDICTIVE, "ranking_top": "all"}  # it picks among all candidates
    answer = decide(body.model_copy(update=every), runtime, **kw)
    allocations = []
    for line in answer["ranking"]:
        fits = [
            c
            for c in line["candidates"]
            if c["eligible"] and c["available"] >= line["qty"] and c["p_stockout"] is not None
        ]
        if fits:
            worst = max(fits, key=lambda c: (c["p_stockout"], c["node_id"]))
            allocations.append(
                {
                    "line_id": line["line_id"],
                    "node_id": worst["node_id"],
                    "sku": line["sku"],
                    "qty": line["qty"],
                }
            )
    return {**answer, "allocations": allocations}


@pytest.fixture(scope="module")
def runs(prepared: Prepared, work: Path) -> dict[str, PolicyRun]:
    jobs = [
        PolicyJob(prepared, "predictive", 2, work / "runs"),
        PolicyJob(prepared, "distance", 2, work / "runs"),
        PolicyJob(prepared, "riskiest", 2, work / "runs", mode="predictive", decider=riskiest),
    ]
    return {j.policy: run_policy(j) for j in jobs}


def test_every_policy_sees_the_same_order_stream(runs: dict[str, PolicyRun]) -> None:
    assert len({r.order_digest for r in runs.values()}) == 1
    orders = {name: [d.orders for d in r.days] for name, r in runs.items()}
    assert len({tuple(v) for v in orders.values()}) == 1
    assert sum(orders["distance"]) > 100


def test_kpis_come_from_simulated_outcomes(runs: dict[str, PolicyRun]) -> None:
    kpis = {name: summarise(r.days) for name, r in runs.items()}
    # the model's riskiest node is where shelves really are short: rejections pile up
    others = max(kpis["distance"]["rejection_rate"], kpis["predictive"]["rejection_rate"])
    assert kpis["riskiest"]["rejection_rate"] > 1.3 * others
    for name, k in kpis.items():
        assert k["totals"]["degraded_decisions"] == 0, name
        assert 0.0 <= k["on_time_rate"] <= 1.0
        assert k["cost_per_order"] > 0 and k["mean_km"] > 0
        lo, hi = k["ci95"]["cost_per_order"]
        assert lo <= k["cost_per_order"] <= hi
        assert k["totals"]["rejections"] == sum(d.rejections for d in runs[name].days)


def test_hidden_truth_never_reaches_decisions(prepared: Prepared, work: Path) -> None:
    """Empty every shelf after the books are fed: the first decision cannot change (it is
    made on the books), but every pick is now rejected (outcomes come from the shelf)."""
    seen: dict[str, list[Any]] = {"normal": [], "empty": []}

    def recorder(tag: str) -> Any:
        def run(body: Any, runtime: Any, **kw: Any) -> dict[str, Any]:
            answer = decide(body, runtime, **kw)
            seen[tag].append((body.order_id, answer["allocations"]))
            return answer

        return run

    def empty_shelves(world: WorldDriver) -> None:
        world.sim.inv.true[:] = 0

    normal = run_policy(
        PolicyJob(
            prepared, "normal", 1, work / "truth", mode="distance", decider=recorder("normal")
        )
    )
    empty = run_policy(
        PolicyJob(
            prepared,
            "empty",
            1,
            work / "truth",
            mode="distance",
            decider=recorder("empty"),
            world_hook=empty_shelves,
        )
    )
    assert seen["normal"][0] == seen["empty"][0]
    assert summarise(empty.days)["rejection_rate"] == 1.0
    assert summarise(normal.days)["rejection_rate"] < 0.5


def test_the_bound_plans_on_the_true_shelf_and_is_never_rejected(
    prepared: Prepared, runs: dict[str, PolicyRun]
) -> None:
    planner = BoundPlanner(time_limit=10.0)
    bound = run_foresight(prepared, 1, planner)
    k = summarise(bound.days)
    assert len(planner.results) == 1
    assert k["rejection_rate"] == 0.0 and k["totals"]["allocations"] > 0
    assert planner.results[0].value > 0
    distance = summarise(runs["distance"].days[:1])
    assert k["unfilled_rate"] <= distance["unfilled_rate"] + 0.01


def test_keyed_draws_depend_only_on_their_key() -> None:
    a = keyed_uniform(3, 2, 10, np.array([1, 2, 3]), np.array([7, 7, 8]))
    b = keyed_uniform(3, 2, 10, np.array([3, 2]), np.array([8, 7]))
    assert a[2] == b[0] and a[1] == b[1]
    assert len(set(a.tolist())) == 3 and ((a > 0) & (a < 1)).all()
    assert keyed_uniform(4, 2, 10, 1, 7) != a[0]


def test_point_in_time_features_skip_rows_older_than_their_grid(prepared: Prepared) -> None:
    """The daily snapshot leaves rows older than its 30-day grid out of the pivots: with an
    older copy of the history in front (other orders, 25 days earlier), its features equal
    those computed from every row."""
    snaps = []
    for grid_tables in (PointInTimeFeatures.GRID_TABLES, ()):
        pit = PointInTimeFeatures(prepared.raw_dir, prepared.start)
        pit.GRID_TABLES = grid_tables
        for name, parts in pit.frames.items():
            if name != "nodes":
                older = [_older(f, pd.Timedelta(days=25)) for f in parts]
                pit.frames[name] = older + parts
        snaps.append(pit.snapshot(prepared.start))
    pruned, full = snaps
    assert len(pruned.node_sku_index) > 100 and pruned.node_sku_index == full.node_sku_index
    assert pruned.node_index == full.node_index and pruned.lane_index == full.lane_index
    for matrix in ("node", "node_sku", "lane"):
        np.testing.assert_array_equal(getattr(pruned, matrix), getattr(full, matrix))


def _older(frame: pd.DataFrame, by: pd.Timedelta) -> pd.DataFrame:
    """The same events earlier, as other orders (an order's events are counted once)."""
    out = frame.assign(event_timestamp=frame["event_timestamp"] - by)
    if "order_id" in out:
        out["order_id"] = "old-" + out["order_id"].astype(str)
    return out


def test_cli_prints_one_json_object(prepared: Prepared, work: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "--scale=small",
            f"--seed={SEED}",
            "--days=1",
            "--policies=distance,cost",
            f"--history-days={HISTORY}",
            f"--work-dir={work}",
            "--workers=1",
            f"--out={work / 'cli'}",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["scale"] == "small" and doc["seed"] == SEED and doc["days"] == 1
    assert set(doc["policies"]) == {"distance", "cost"}
    for k in ("cost_per_order", "on_time_rate", "rejection_rate", "decision_p99_ms", "ci95"):
        assert k in doc["policies"]["cost"]
    assert doc["orders"] > 0 and len(doc["daily"]["cost"]) == 1
    assert doc["bound"]["cost_per_order"] > 0 and set(doc["gap_closed"]) == {"distance", "cost"}
    assert (work / "cli" / "report.md").exists() and (work / "cli" / "report.html").exists()
    assert json.loads((work / "cli" / "backtest.json").read_text())["orders"] == doc["orders"]


def test_cli_rejects_unknown_policies(work: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", "--policies=nearest", f"--work-dir={work}"])
    assert result.exit_code == 2
    assert "nearest" in result.output
