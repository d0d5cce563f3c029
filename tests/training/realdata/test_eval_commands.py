"""``routecast eval olist|freshretail`` on sample data in each layout: the printed JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from features.adapters.samples import write_freshretail_sample, write_olist_sample
from serving.cli import app

runner = CliRunner()


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    start = result.stdout.index("{")
    return json.loads(result.stdout[start:])


def test_eval_olist_prints_the_report(tmp_path: Path) -> None:
    train = write_olist_sample(tmp_path / "a", n_orders=300, seed=1)
    test = write_olist_sample(tmp_path / "b", n_orders=150, seed=2)
    report = _json(["eval", "olist", "--train", str(train), "--test", str(test)])
    for key in ("n_train", "n_test", "mae_p50", "p90_coverage", "mean_p90_days"):
        assert key in report
    baselines = report["baselines"]
    assert isinstance(baselines, dict)
    assert set(baselines["promised_date"]) == {"mae", "coverage", "mean_days"}
    assert set(baselines["lane_median"]) == {"mae"}
    assert report["n_train"] > 0 and report["n_test"] > 0
    assert 0.0 <= float(report["p90_coverage"]) <= 1.0


def test_eval_olist_backtest_scores_each_pseudo_cut(tmp_path: Path) -> None:
    data = write_olist_sample(tmp_path / "a", n_orders=400, seed=4)
    report = _json(
        ["eval", "olist-backtest", "--data", str(data), "--cuts", "2018-01-01,2018-02-01"]
    )
    assert [f["cut"] for f in report["folds"]] == ["2018-01-01", "2018-02-01"]
    for fold in report["folds"]:
        assert fold["n_train"] > 0 and fold["n_test"] > 0
        assert fold["mean_p90_days"] > 0 and 0.0 <= fold["p90_coverage"] <= 1.0
    assert report["mean_pinball_p90"] > 0


def test_eval_freshretail_prints_the_report_for_two_cities(tmp_path: Path) -> None:
    a = write_freshretail_sample(tmp_path / "a.parquet", stores=3, products=8, days=40, seed=1)
    b = write_freshretail_sample(
        tmp_path / "b.parquet", stores=2, products=8, days=40, city_id=2, seed=2
    )
    report = _json(["eval", "freshretail", "--train", str(a), "--test", str(b)])
    for key in ("n_train", "n_test", "auc", "pr_auc", "brier", "ece"):
        assert key in report
    persistence = report["baselines"]["persistence"]
    assert set(persistence) == {"auc", "pr_auc", "brier", "ece"}
    assert report["split"] == "files"
    assert not set(report["train_stores"]) & set(report["test_stores"])


def test_eval_olist_reports_a_missing_directory(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["eval", "olist", "--train", str(tmp_path), "--test", str(tmp_path)]
    )
    assert result.exit_code == 2
