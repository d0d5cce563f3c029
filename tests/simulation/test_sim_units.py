"""Unit tests of the simulator's building blocks, on tiny hand-made inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulation.assortment import PRODUCT_GROUPS, make_catalog
from simulation.carriers import Parcels, deliver, promised_business_days
from simulation.dispatch import grouped_cumsum
from simulation.geography import NON_CONTIGUOUS, postal_code, us_cities, zip_table
from simulation.inventory import LEAD_TIME, initial_inventory
from simulation.network import DC, STORE, TPL, make_network
from simulation.scales import SCALES, scale_config
from simulation.simulator import pack_schedule


@settings(max_examples=50)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(1, 5)), min_size=1, max_size=40))
def test_grouped_cumsum_matches_pandas(pairs: list[tuple[int, int]]) -> None:
    pairs.sort(key=lambda p: p[0])
    keys = np.array([k for k, _ in pairs], dtype=np.int64)
    vals = np.array([v for _, v in pairs], dtype=np.int64)
    expected = pd.Series(vals).groupby(keys).cumsum().to_numpy()
    np.testing.assert_array_equal(grouped_cumsum(vals, keys), expected)


def test_pack_schedule_queues_behind_backlog() -> None:
    position = np.arange(0, 40, dtype=np.int64)
    cap = np.full(40, 10, dtype=np.int64)
    days, hour = pack_schedule(position, cap, cap, np.full(40, 9.0))
    assert (np.diff(days) >= 0).all()
    assert days[9] == 0 and days[10] == 1 and days[39] == 3
    within_today = hour[:10]
    assert (np.diff(within_today) >= 0).all() and within_today[0] >= 9.5
    # zero capacity today (closure) pushes everything to later days
    closed, _ = pack_schedule(np.array([0]), np.array([0]), np.array([10]), np.array([9.0]))
    assert closed[0] == 1


def _parcels(weekday_offset: int, n: int = 4000, queue_days: int = 0) -> Parcels:
    monday = np.datetime64("2025-06-02")
    return Parcels(
        order_day=np.full(n, monday + weekday_offset),
        order_hour=np.full(n, 10.0),
        node_type=np.full(n, DC, dtype=np.int64),
        distance_km=np.full(n, 1200.0),
        weight_kg=np.full(n, 2.0),
        intra_west=np.zeros(n, dtype=bool),
        queue_days=np.full(n, queue_days, dtype=np.int64),
        ready_hour=np.full(n, 11.0),
        handover_lag=np.zeros(n),
    )


def test_friday_orders_take_longer_than_monday_orders() -> None:
    monday = deliver(np.random.default_rng(1), _parcels(0)).delivery_days.mean()
    friday = deliver(np.random.default_rng(1), _parcels(4)).delivery_days.mean()
    assert friday > monday + 1.0


def test_queue_delay_adds_to_delivery_and_promise_ignores_it() -> None:
    fast = deliver(np.random.default_rng(2), _parcels(1))
    slow = deliver(np.random.default_rng(2), _parcels(1, queue_days=2))
    assert slow.delivery_days.mean() > fast.delivery_days.mean() + 1.5
    np.testing.assert_array_equal(slow.promised_days, fast.promised_days)
    assert (fast.delivery_days >= 0).all()


def test_promise_grows_with_distance() -> None:
    days = promised_business_days(np.array([50.0, 800.0, 4000.0]))
    assert days[0] < days[1] < days[2]


def test_zip_table_is_contiguous_and_normalised() -> None:
    table = zip_table()
    assert table.weight.sum() == pytest.approx(1.0)
    assert not set(np.unique(table.state)) & NON_CONTIGUOUS
    assert all(len(z) == 5 for z in table.zip_code[:100])
    # a big-city ZIP outweighs a rural one
    for big_city_zip in ("10001", "60601", "90012"):  # New York, Chicago, Los Angeles
        w = table.weight[table.zip_code == big_city_zip]
        assert w.size == 1 and w[0] > 2 * np.median(table.weight), big_city_zip


def test_postal_code_is_in_the_city() -> None:
    chicago = next(c for c in us_cities() if c.name == "Chicago" and c.state == "IL")
    assert postal_code(chicago).startswith("606")


def test_network_composition_small() -> None:
    cfg = scale_config("small")
    rng = np.random.default_rng(0)
    catalog = make_catalog(rng, cfg.n_skus)
    net = make_network(rng, cfg, catalog)
    counts = np.bincount(net.node_type, minlength=3)
    assert (counts[DC], counts[STORE], counts[TPL]) == (cfg.n_dcs, cfg.n_stores, cfg.n_3pls)
    assert net.stocked[net.node_type == DC].all()
    store_share = net.stocked[net.node_type == STORE].mean()
    assert 0.45 <= store_share <= 0.75
    assert net.ships[net.node_type == TPL].sum(axis=1).max() < len(PRODUCT_GROUPS)
    assert len(set(net.node_id)) == len(net)
    assert set(np.unique(catalog.group)) == set(range(len(PRODUCT_GROUPS)))


def test_inventory_mechanics_hide_shrink_until_counted() -> None:
    cfg = scale_config("small")
    rng = np.random.default_rng(4)
    catalog = make_catalog(rng, 40)
    net = make_network(rng, cfg, catalog)
    inv = initial_inventory(rng, net, np.full((len(net), 40), 1.0))
    assert (inv.true == inv.recorded).all()
    before = inv.recorded.copy()
    for _ in range(10):
        inv.shrink(rng, net, catalog.velocity_class)
    assert (inv.recorded == before).all()
    assert (inv.true <= before).all() and (inv.true < before).any()
    assert (inv.true[net.node_type == DC] == before[net.node_type == DC]).all()
    net.count_interval[:] = 1.0  # count everything today
    inv.count(rng, net, np.zeros(0, dtype=np.int64))
    assert (inv.recorded == inv.true).all()
    assert (inv.days_since_count[net.stocked] == 0).all()


def test_replenishment_arrives_after_lead_time() -> None:
    cfg = scale_config("small")
    rng = np.random.default_rng(5)
    catalog = make_catalog(rng, 10)
    net = make_network(rng, cfg, catalog)
    inv = initial_inventory(rng, net, np.full((len(net), 10), 2.0))
    inv.true[:] = 0
    inv.recorded[:] = 0
    inv.replenish(day=0)
    assert (inv.on_order[net.stocked] > 0).all()
    store = int(np.flatnonzero(net.node_type == STORE)[0])
    lead = int(LEAD_TIME[STORE])
    for day in range(1, lead):
        inv.receive(rng, day, net.node_type)
        assert inv.recorded[store].sum() == 0
    inv.receive(rng, lead, net.node_type)
    assert inv.recorded[store].sum() == inv.order_up_to[store].sum()


def test_scales_grow() -> None:
    sizes = [SCALES[s] for s in ("small", "medium", "large")]
    for a, b in itertools.pairwise(sizes):
        assert b.n_stores > a.n_stores and b.n_skus > a.n_skus and b.days > a.days
