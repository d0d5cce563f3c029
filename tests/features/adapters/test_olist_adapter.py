"""Olist adapter: layout, zip padding, delivered-only rows and canonical contracts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.adapters import load_olist
from features.adapters.samples import write_olist_sample
from features.contracts.raw import validate


@pytest.fixture(scope="module")
def olist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_olist_sample(tmp_path_factory.mktemp("olist"), n_orders=120, seed=3)


def test_shipments_pass_the_canonical_contract(olist_dir: Path) -> None:
    tables = load_olist(olist_dir)
    validate("shipments", tables.shipments)
    validate("nodes", tables.nodes)
    assert tables.shipments["shipment_id"].is_unique
    assert (
        tables.facts["shipment_id"].to_numpy() == tables.shipments["shipment_id"].to_numpy()
    ).all()


def test_zip_prefixes_lost_leading_zeros_are_padded(olist_dir: Path) -> None:
    tables = load_olist(olist_dir)
    assert tables.shipments["dest_region"].str.len().eq(5).all()
    # The sample stores "1001" for São Paulo centre; it must resolve to prefix 01001.
    assert "01001" in set(tables.shipments["dest_region"]) | set(tables.nodes["postal_code"])


def test_only_delivered_orders_and_days_from_timestamps(olist_dir: Path) -> None:
    orders = pd.read_csv(olist_dir / "olist_orders_dataset.csv")
    tables = load_olist(olist_dir)
    delivered = orders[orders["order_status"] == "delivered"]
    assert set(tables.shipments["order_id"]) == set(delivered["order_id"])
    row = delivered.iloc[0]
    expected = (
        pd.Timestamp(row["order_delivered_customer_date"])
        - pd.Timestamp(row["order_purchase_timestamp"])
    ) / pd.Timedelta(days=1)
    got = tables.shipments.set_index("order_id").loc[row["order_id"], "delivery_days"]
    assert got == pytest.approx(expected)


def test_missing_file_names_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"olist_geolocation_by_zip_prefix\.csv"):
        load_olist(tmp_path)
