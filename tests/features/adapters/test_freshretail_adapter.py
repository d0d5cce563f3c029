"""FreshRetailNet adapter: keys, UTC hours, node filter and column checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.adapters import load_freshretail
from features.adapters.samples import write_freshretail_sample


@pytest.fixture(scope="module")
def parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_freshretail_sample(
        tmp_path_factory.mktemp("fr") / "city.parquet", stores=2, products=2, days=3
    )


def test_hourly_rows_keyed_by_node_and_sku_in_utc(parquet: Path) -> None:
    hourly = load_freshretail(parquet).hourly
    assert len(hourly) == 2 * 2 * 3 * 24
    assert str(hourly["event_timestamp"].dt.tz) == "UTC"
    assert hourly["node_id"].str.startswith("s").all()
    assert hourly["sku"].str.startswith("p").all()
    first = hourly.iloc[5]
    assert first["event_timestamp"] == first["day"] + pd.Timedelta(hours=int(first["hour"]))


def test_node_filter_keeps_only_those_stores(parquet: Path) -> None:
    tables = load_freshretail(parquet)
    keep = tables.nodes[:1]
    assert load_freshretail(parquet, nodes=keep).nodes == keep


def test_missing_columns_are_named(tmp_path: Path, parquet: Path) -> None:
    broken = tmp_path / "broken.parquet"
    pd.read_parquet(parquet).drop(columns=["hourly_stockout"]).to_parquet(broken)
    with pytest.raises(ValueError, match="hourly_stockout"):
        load_freshretail(broken)
