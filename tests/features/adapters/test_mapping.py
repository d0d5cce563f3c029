"""``routecast import``: the shipped mappings reproduce the hand-written adapters; bad rows are listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.adapters import load_freshretail, load_olist
from features.adapters.mapping import (
    MappingError,
    import_history,
    load_mapping,
    read_delivery_history,
    run_import,
)
from features.adapters.samples import write_freshretail_sample, write_olist_sample
from serving.cli import app

MAPPINGS = Path(__file__).resolve().parents[3] / "examples" / "mappings"
runner = CliRunner()


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])  # type: ignore[no-any-return]


def test_olist_mapping_gives_the_adapters_tables(tmp_path: Path) -> None:
    data = write_olist_sample(tmp_path / "olist", n_orders=250, seed=3)
    result = import_history(load_mapping(MAPPINGS / "olist.yaml"), data)
    by_hand = load_olist(data)
    pd.testing.assert_frame_equal(result.tables["nodes"], by_hand.nodes)
    pd.testing.assert_frame_equal(result.tables["shipments"], by_hand.shipments)
    pd.testing.assert_frame_equal(result.tables["shipment_facts"], by_hand.facts)
    # The sample's cancelled orders are listed, one row each, not silently skipped.
    summary = result.log.summary()
    assert summary["excluded"] == by_hand.dropped["not_delivered_or_incomplete"] > 0


def test_freshretailnet_mapping_gives_the_adapters_table(tmp_path: Path) -> None:
    path = write_freshretail_sample(tmp_path / "fr" / "city.parquet", stores=2, products=3, days=5)
    result = import_history(load_mapping(MAPPINGS / "freshretailnet.yaml"), path.parent)
    pd.testing.assert_frame_equal(
        result.tables["hourly_availability"], load_freshretail(path).hourly
    )


def _corrupt_olist(directory: Path) -> dict[str, str]:
    """Break one row of each kind; returns the ids that must be reported."""
    orders = pd.read_csv(directory / "olist_orders_dataset.csv", dtype=str)
    delivered = orders.index[orders["order_status"] == "delivered"]
    bad_time, backwards, dangling = (orders.loc[delivered[i], "order_id"] for i in (3, 4, 5))
    orders.loc[delivered[3], "order_purchase_timestamp"] = "yesterday-ish"
    orders.loc[delivered[4], "order_delivered_customer_date"] = "2016-01-01 00:00:00"
    orders.to_csv(directory / "olist_orders_dataset.csv", index=False)
    items = pd.read_csv(directory / "olist_order_items_dataset.csv", dtype=str)
    bad_price = items.loc[items["order_id"] == orders.loc[delivered[6], "order_id"]]
    items.loc[bad_price.index, "price"] = "twelve"
    items.loc[items["order_id"] == dangling, "order_id"] = "no-such-order"
    items.to_csv(directory / "olist_order_items_dataset.csv", index=False)
    sellers = pd.read_csv(directory / "olist_sellers_dataset.csv", dtype=str)
    sellers.loc[5, "seller_zip_code_prefix"] = "99999"  # not in the geolocation table
    sellers.to_csv(directory / "olist_sellers_dataset.csv", index=False)
    return {
        "bad_time": bad_time,
        "backwards": backwards,
        "bad_price": str(bad_price["order_id"].iloc[0]),
        "seller": str(sellers.loc[5, "seller_id"]),
    }


def test_malformed_rows_are_reported_with_file_line_and_reason(tmp_path: Path) -> None:
    data = write_olist_sample(tmp_path / "olist", n_orders=200, seed=5)
    clean = len(load_olist(data).shipments)
    ids = _corrupt_olist(data)
    report = run_import(MAPPINGS / "olist.yaml", data, tmp_path / "out")
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv", dtype=str)
    # Order-level rows are keyed by order id, shipment-level rows by "order:node".
    order_key = rejected["key"].str.split(":").str[0]
    reasons = rejected.groupby(order_key)["reason"].agg(" | ".join)

    assert "purchased_at: not a time" in reasons[ids["bad_time"]]
    assert "delivered_after_purchase" in reasons[ids["backwards"]]
    assert "price: not a number (value 'twelve')" in reasons[ids["bad_price"]]
    assert "has no coordinates (value '99999')" in reasons[ids["seller"]]
    assert "order_id 'no-such-order' is not in orders" in reasons["no-such-order"]
    # The seller's parcels are listed too, so every shipment lost is accounted for.
    lost = rejected[rejected["reason"].str.startswith("its node was rejected")]
    assert len(lost) > 0
    # Every rejected row names the file and line it came from.
    first = rejected[rejected["key"] == ids["bad_time"]].iloc[0]
    orders = pd.read_csv(data / "olist_orders_dataset.csv", dtype=str)
    assert orders.iloc[int(first["line"]) - 2]["order_id"] == ids["bad_time"]
    assert first["file"] == "olist_orders_dataset.csv"

    written = report["written"]["shipments"]
    assert written < clean
    assert read_delivery_history(tmp_path / "out").shipments.shape[0] == written
    assert report["rejected"] == int((rejected["kind"] == "rejected").sum())


def test_duplicate_and_out_of_range_hours_are_rejected_row_by_row(tmp_path: Path) -> None:
    path = write_freshretail_sample(tmp_path / "fr" / "city.parquet", stores=2, products=2, days=3)
    raw = pd.read_parquet(path)
    raw.loc[7, "discount"] = 3.5
    raw = pd.concat([raw, raw.iloc[[10]]], ignore_index=True)
    raw.to_parquet(path, index=False)
    report = run_import(MAPPINGS / "freshretailnet.yaml", path.parent, tmp_path / "out")
    rejected = pd.read_csv(tmp_path / "out" / "rejected.csv")
    assert report["written"]["hourly_availability"] == len(raw) - 3
    assert rejected["reason"].str.contains("one_row_per_series_and_hour").sum() == 2
    assert rejected["reason"].str.contains(r"discount: less_than_or_equal_to\(1\)").sum() == 1
    assert sorted(rejected["line"]) == [7, 10, len(raw) - 1]


def test_units_time_zones_and_padding(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame(
        {
            "id": ["A1", "A2"],
            "bought": ["2024-07-01 08:00", "2024-07-01 09:30"],
            "approved": ["2024-07-01 09:00"] * 2,
            "picked": ["2024-07-02 10:00"] * 2,
            "arrived": ["2024-07-04 20:00", "2024-07-03 10:00"],
            "promise": ["2024-07-06"] * 2,
            "zip": ["2134", "10001"],
            "region": ["ma", "ny"],
        }
    ).to_csv(src / "orders.csv", index=False)
    pd.DataFrame(
        {"order": ["A1", "A2"], "wh": ["W1", "W1"], "cents": [1999, 500], "lbs": [2.0, 1.0]}
    ).to_csv(src / "lines.csv", index=False)
    pd.DataFrame({"wh": ["W1"], "zip": ["07001"], "st": ["NJ"]}).to_csv(
        src / "nodes.csv", index=False
    )
    pd.DataFrame(
        {
            "zip": ["02134", "10001", "07001"],
            "lat": [42.35, 40.75, 40.58],
            "lon": [-71.1, -74.0, -74.28],
        }
    ).to_csv(src / "zips.csv", index=False)
    mapping = {
        "timezone": "America/New_York",
        "sources": {
            "orders": {
                "file": "orders.csv",
                "columns": {
                    "order_id": "id",
                    "purchased_at": "bought",
                    "approved_at": "approved",
                    "carrier_at": "picked",
                    "delivered_at": "arrived",
                    "promised_at": "promise",
                    "dest_postal_code": {"from": "zip", "pad": 5},
                    "dest_state": {"from": "region", "upper": True},
                },
            },
            "order_lines": {
                "file": "lines.csv",
                "columns": {
                    "order_id": "order",
                    "node_id": "wh",
                    "price": {"from": "cents", "scale": 0.01},
                    "weight_kg": {"from": "lbs", "unit": "lb"},
                },
            },
            "nodes": {
                "file": "nodes.csv",
                "columns": {
                    "node_id": "wh",
                    "postal_code": {"from": "zip", "pad": 5},
                    "state": "st",
                },
            },
            "postal_codes": {
                "file": "zips.csv",
                "columns": {"postal_code": {"from": "zip", "pad": 5}, "lat": "lat", "lon": "lon"},
            },
        },
    }
    tables = import_history(mapping, src).tables
    ships, facts = tables["shipments"], tables["shipment_facts"]
    # 08:00 EDT is 12:00 UTC.
    assert ships["event_timestamp"].iloc[0] == pd.Timestamp("2024-07-01 12:00", tz="UTC")
    assert ships["dest_region"].tolist() == ["02134", "10001"]
    assert ships["dest_lat"].iloc[0] == pytest.approx(42.35)
    assert facts["price"].tolist() == pytest.approx([19.99, 5.0])
    assert facts["weight_kg"].tolist() == pytest.approx([0.90718474, 0.45359237])
    assert facts["dest_state"].tolist() == ["MA", "NY"]
    assert tables["nodes"]["timezone"].iloc[0] == "America/New_York"
    assert ships["delivery_days"].iloc[0] == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["sources"]["orders"]["columns"].pop("delivered_at"), "delivered_at"),
        (lambda m: m["sources"]["orders"]["columns"].update(eta="x"), "unknown field"),
        (lambda m: m["sources"]["nodes"].update(file="missing_*.csv"), "missing_"),
        (
            lambda m: m["sources"]["order_lines"]["columns"].update(price="no_such_column"),
            "no_such_column",
        ),
        (
            lambda m: m["sources"]["products"]["columns"].update(
                weight_kg={"from": "product_weight_g", "unit": "stone"}
            ),
            "stone",
        ),
    ],
)
def test_a_wrong_mapping_is_an_error_that_names_the_field(
    tmp_path: Path, edit: Any, message: str
) -> None:
    data = write_olist_sample(tmp_path / "olist", n_orders=20, seed=1)
    mapping = yaml.safe_load((MAPPINGS / "olist.yaml").read_text())
    edit(mapping)
    with pytest.raises(MappingError, match=message):
        import_history(mapping, data)


def test_import_then_eval_delivery_reproduces_eval_olist(tmp_path: Path) -> None:
    data = write_olist_sample(tmp_path / "olist", n_orders=300, seed=1)
    imported = tmp_path / "imported"
    report = _json(
        [
            "import",
            "--mapping",
            str(MAPPINGS / "olist.yaml"),
            "--source",
            str(data),
            "--out",
            str(imported),
        ]
    )
    assert report["written"]["shipments"] > 0
    by_hand = _json(["eval", "olist", "--train", str(data), "--test", str(data)])
    mapped = _json(["eval", "delivery", "--data", str(imported)])
    # Same tables, same metrics (Feast may sum the same rows in another order: the last bit).
    for key in ("n_train", "n_test", "mae_p50", "p90_coverage", "mean_p90_days"):
        assert mapped[key] == pytest.approx(by_hand[key], rel=1e-9), key
    for name, values in by_hand["baselines"].items():
        assert mapped["baselines"][name] == pytest.approx(values, rel=1e-9), name


def test_import_then_eval_stockout_reproduces_eval_freshretail(tmp_path: Path) -> None:
    path = write_freshretail_sample(tmp_path / "fr" / "city.parquet", stores=4, products=6, days=30)
    imported = tmp_path / "imported"
    _json(
        [
            "import",
            "--mapping",
            str(MAPPINGS / "freshretailnet.yaml"),
            "--source",
            str(path.parent),
            "--out",
            str(imported),
        ]
    )
    by_hand = _json(["eval", "freshretail", "--train", str(path), "--test", str(path)])
    mapped = _json(["eval", "stockout", "--data", str(imported)])
    for key in ("train_stores", "test_stores"):
        assert mapped[key] == by_hand[key]
    for key in ("n_train", "n_test", "auc", "ece"):
        assert mapped[key] == pytest.approx(by_hand[key], rel=1e-9), key
    persistence = by_hand["baselines"]["persistence"]
    assert mapped["baselines"]["persistence"] == pytest.approx(persistence, rel=1e-9)
