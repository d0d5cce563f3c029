"""Small synthetic datasets in the Olist and FreshRetailNet layouts.

They let tests and a first-time user run ``routecast eval`` end to end without the real
downloads; the generating rules are simple but put signal where the real data has it
(distance and a time trend for delivery days, persistence for stock-outs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: (zip prefix without leading zero as the re-saved sample has it, state, lat, lon)
_PLACES = (
    ("1001", "SP", -23.55, -46.63),
    ("13023", "SP", -22.90, -47.06),
    ("20040", "RJ", -22.90, -43.18),
    ("30130", "MG", -19.92, -43.94),
    ("40010", "BA", -12.97, -38.50),
    ("80010", "PR", -25.43, -49.27),
    ("90010", "RS", -30.03, -51.23),
    ("69005", "AM", -3.12, -60.02),
)


def write_olist_sample(directory: Path, *, n_orders: int = 400, seed: int = 0) -> Path:
    """Write the six Olist CSVs the adapter reads; returns ``directory``."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    places = pd.DataFrame(_PLACES, columns=["prefix", "state", "lat", "lon"])
    pd.DataFrame(
        {
            "geolocation_zip_code_prefix": places["prefix"].str.zfill(5),
            "geolocation_lat": places["lat"],
            "geolocation_lng": places["lon"],
            "geolocation_city": "city",
            "geolocation_state": places["state"],
        }
    ).to_csv(directory / "olist_geolocation_by_zip_prefix.csv", index=False)
    sellers = pd.DataFrame(
        {
            "seller_id": [f"seller{i}" for i in range(6)],
            "seller_zip_code_prefix": places["prefix"].to_numpy()[[0, 0, 1, 2, 3, 5]],
            "seller_city": "city",
            "seller_state": places["state"].to_numpy()[[0, 0, 1, 2, 3, 5]],
        }
    )
    sellers.to_csv(directory / "olist_sellers_dataset.csv", index=False)
    products = pd.DataFrame(
        {
            "product_id": [f"prod{i}" for i in range(10)],
            "product_category_name": ["casa", "esporte"] * 5,
            "product_weight_g": rng.integers(100, 5000, 10),
        }
    )
    products.to_csv(directory / "olist_products_dataset.csv", index=False)

    start = pd.Timestamp("2017-06-01")
    span = (pd.Timestamp("2018-06-30") - start).total_seconds()
    purchase = start + pd.to_timedelta(np.sort(rng.random(n_orders)) * span, unit="s")
    customer_place = rng.integers(0, len(places), n_orders)
    seller_idx = rng.integers(0, len(sellers), n_orders)
    seller_place = (
        places.set_index("prefix").loc[sellers["seller_zip_code_prefix"]].iloc[seller_idx]
    )
    dest = places.iloc[customer_place]
    km = 111.0 * np.hypot(
        dest["lat"].to_numpy() - seller_place["lat"].to_numpy(),
        dest["lon"].to_numpy() - seller_place["lon"].to_numpy(),
    )
    trend = np.where(purchase >= pd.Timestamp("2018-03-01"), 0.7, 1.0)
    handling = rng.gamma(2.0, 0.8, n_orders)
    days = trend * (2.0 + km / 250.0) * rng.gamma(6.0, 1 / 6.0, n_orders) + handling
    approved = purchase + pd.to_timedelta(rng.random(n_orders) * 0.5, unit="D")
    carrier = approved + pd.to_timedelta(handling, unit="D")
    delivered = purchase + pd.to_timedelta(np.maximum(days, handling + 0.2), unit="D")
    estimated = (purchase + pd.to_timedelta(days * 1.8 + 5.0, unit="D")).normalize()
    order_ids = [f"order{i:05d}" for i in range(n_orders)]
    status = np.where(rng.random(n_orders) < 0.02, "canceled", "delivered")
    pd.DataFrame(
        {
            "order_id": order_ids,
            "customer_id": [f"cust{i:05d}" for i in range(n_orders)],
            "order_status": status,
            "order_purchase_timestamp": purchase,
            "order_approved_at": approved,
            "order_delivered_carrier_date": carrier,
            "order_delivered_customer_date": delivered,
            "order_estimated_delivery_date": estimated,
        }
    ).to_csv(directory / "olist_orders_dataset.csv", index=False)
    pd.DataFrame(
        {
            "customer_id": [f"cust{i:05d}" for i in range(n_orders)],
            "customer_unique_id": [f"u{i:05d}" for i in range(n_orders)],
            "customer_zip_code_prefix": dest["prefix"].to_numpy(),
            "customer_city": "city",
            "customer_state": dest["state"].to_numpy(),
        }
    ).to_csv(directory / "olist_customers_dataset.csv", index=False)
    pd.DataFrame(
        {
            "order_id": order_ids,
            "order_item_id": 1,
            "product_id": rng.choice(products["product_id"], n_orders),
            "seller_id": sellers["seller_id"].iloc[seller_idx].to_numpy(),
            "shipping_limit_date": carrier,
            "price": rng.uniform(10, 300, n_orders).round(2),
            "freight_value": (5 + km / 100).round(2),
        }
    ).to_csv(directory / "olist_order_items_dataset.csv", index=False)
    return directory


def write_freshretail_sample(
    path: Path,
    *,
    stores: int = 4,
    products: int = 6,
    days: int = 30,
    city_id: int = 1,
    seed: int = 0,
) -> Path:
    """Write an hourly FreshRetailNet-layout parquet; stock-outs persist from day to day."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list[pd.DataFrame] = []
    dates = pd.date_range("2024-03-28", periods=days, freq="D")
    hours = np.arange(24)
    for s in range(stores):
        for p in range(products):
            fragile = rng.random() * 0.6
            short = False
            for day in dates:
                short = rng.random() < (0.6 if short else fragile * 0.4)
                sellout = rng.integers(9, 20) if short else 24
                stockout = (hours >= sellout).astype(int)
                rows.append(
                    pd.DataFrame(
                        {
                            "city_id": city_id,
                            "store_id": 10 * city_id + s,
                            "management_group_id": 1,
                            "first_category_id": p % 3,
                            "second_category_id": p % 4,
                            "third_category_id": p,
                            "product_id": 100 + p,
                            "dt": day.strftime("%Y-%m-%d"),
                            "hour": hours,
                            "hourly_sale": np.where(stockout == 1, 0.0, rng.gamma(1.0, 0.1, 24)),
                            "hourly_stockout": stockout,
                            "discount": 1.0 if day.dayofweek < 5 else 0.8,
                            "holiday_flag": int(day.dayofweek >= 5),
                            "activity_flag": 0,
                            "precpt": 1.0,
                            "avg_temperature": 25.0,
                            "avg_humidity": 80.0,
                            "avg_wind_level": 1.0,
                        }
                    )
                )
    frame = pd.concat(rows, ignore_index=True)
    frame.astype({"holiday_flag": np.int32, "activity_flag": np.int32}).to_parquet(
        path, index=False
    )
    return path
