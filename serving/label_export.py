"""Ledger outcomes → one parquet of canonical ``allocations`` rows: every live allocation and
every node rejection as a stockout-risk label (``routecast inventory labels``). The rows are
built by ``serving.history_export``, which also writes them day by day as canonical history."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from serving.history_export import allocation_outcomes


def allocation_labels(engine: Engine) -> pd.DataFrame:
    """One canonical allocation row per ledger allocation; ``rejected`` is the label."""
    return allocation_outcomes(engine, settled_only=False)


def export_labels(engine: Engine, out: Path) -> int:
    frame = allocation_labels(engine)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return len(frame)
