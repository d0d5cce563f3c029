"""Shared constants of the session world built in conftest (importable by test modules)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

END = datetime(2025, 6, 2, 15, 30, tzinfo=UTC)
DAYS = 28


def node_types(tables: dict[str, pd.DataFrame]) -> pd.Series:
    return tables["nodes"].set_index("node_id")["node_type"]
