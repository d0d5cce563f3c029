"""The report renders every part of a backtest result, self-contained."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import numpy as np

from simulation.backtest.report import kpi_names, write_report

POLICIES = ("predictive", "cost", "distance")


def constructed_result(days: int = 5) -> dict[str, Any]:
    """A result shaped like ``routecast backtest --json`` (values drawn, not meaningful)."""
    rng = np.random.default_rng(0)
    kpis = ("cost_per_order", "on_time_rate", "rejection_rate", "shipments_per_order")
    policies: dict[str, Any] = {}
    daily: dict[str, Any] = {}
    for p in POLICIES:
        point = {k: float(rng.uniform(0.1, 20)) for k in kpis}
        policies[p] = {
            **point,
            "ci95": {k: [v * 0.9, v * 1.1] for k, v in point.items()},
            "totals": {"orders": 100},
        }
        daily[p] = [
            {
                "day": f"2024-05-0{d + 1}",
                "orders": 20,
                **{k: float(rng.uniform(0, 20)) for k in kpis},
            }
            for d in range(days)
        ]
    return {
        "scale": "small",
        "seed": 11,
        "days": days,
        "orders": 100,
        "inventory_accuracy": None,
        "policies": policies,
        "daily": daily,
        "bound": {
            "method": "mixed",
            "days_mip": 3,
            "days_lp": 2,
            "cost_per_order": 7.25,
            "seconds": 1.5,
            "daily": [{"cost_per_order": 7.0 + d, "method": "mip"} for d in range(days)],
        },
        "gap_closed": {"predictive": 0.41, "cost": 0.2, "distance": 0.0},
        "seconds": 12.5,
        "models": {"stockout": "3"},
    }


def test_report_from_a_constructed_result(tmp_path: Path) -> None:
    result = constructed_result()
    paths = write_report(result, tmp_path)
    md = paths["markdown"].read_text()
    page = paths["html"].read_text()
    # every policy's KPI value and its interval, the bound and the gap closed are written
    for p in POLICIES:
        assert f"| {p} | {result['policies'][p]['cost_per_order']:.4g} [" in md
    assert "bound, solver (mixed)" in md and "7.25" in md and "predictive 0.41" in md
    assert "3 day(s) solved as MIP" in md and "seed" in md and "world's own counting" in md
    # markdown points at PNGs that exist; the HTML embeds them and loads nothing from outside
    for name in ("kpis", "daily", "gap_closed"):
        assert f"plots/{name}.png" in md
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == 3 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in imgs)
    assert not re.search(r"(src|href)=\"(https?:)?//", page)


def test_report_without_bound_or_gap(tmp_path: Path) -> None:
    result = constructed_result(days=1)
    del result["bound"], result["gap_closed"]
    paths = write_report(result, tmp_path)
    assert "No perfect-foresight bound" in paths["markdown"].read_text()
    assert "gap_closed" not in paths
    assert kpi_names(result) == [
        "cost_per_order",
        "on_time_rate",
        "rejection_rate",
        "shipments_per_order",
    ]
