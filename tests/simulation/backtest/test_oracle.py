"""The oracle's delivery law and its encoding as the router's quantiles."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from routing import Policy
from routing.ratings import lateness
from simulation.backtest.oracle import Law, OracleDelivery, delivery_law, encode, order_lateness

PROMISE = 5.0


def _law(day: str, hour: float, lag: list[float], node_type: list[int]) -> Law:
    n = len(lag)
    return delivery_law(
        node_type=np.array(node_type, dtype=np.int64),
        handover_lag=np.array(lag),
        distance_km=np.full(n, 400.0),
        intra_west=np.zeros(n, dtype=bool),
        weight_kg=2.0,
        order_day=np.datetime64(day, "D"),
        order_hour=hour,
        promise_days=PROMISE,
    )


def test_a_store_that_slips_more_is_late_more_often() -> None:
    # Wednesday afternoon, after the stores' 15:00 pick-up: a slip meets the weekend
    law = _law("2025-03-05", 16.0, [0.3, 0.5, 0.7], [1, 1, 1])
    assert law.p_late[0] < law.p_late[1] < law.p_late[2]
    assert law.p_late[2] > 0.2


def test_the_weekday_and_the_cutoff_drive_lateness() -> None:
    monday = _law("2025-03-03", 10.0, [0.7], [1])
    wednesday_late = _law("2025-03-05", 16.0, [0.7], [1])
    assert monday.p_late[0] < 0.02 < wednesday_late.p_late[0]
    # a DC's 17:00 pick-up is still ahead at 16:00; the store's 15:00 one is gone
    dc, store = _law("2025-03-05", 16.0, [0.05, 0.05], [0, 1]).p_late
    assert dc < store


def test_encoding_stays_finite_when_the_median_sits_at_the_promise() -> None:
    # P(late) near one half with a median just under the promise: no lognormal through the
    # median fits with a sane spread; the law's own spread is used and the median moved
    law = Law(p_late=np.array([0.4999, 0.3]), median=np.array([4.0, 5.0]), p90=np.array([6.0, 6.5]))
    p50, p90 = encode(law, PROMISE)
    assert np.isfinite(p50).all() and np.isfinite(p90).all()
    got = [lateness(a, b, PROMISE)[0] for a, b in zip(p50, p90, strict=True)]
    np.testing.assert_allclose(got, law.p_late, atol=1e-6)


@pytest.mark.parametrize("day,hour", [("2025-03-03", 9.0), ("2025-03-05", 16.0)])
def test_encoded_quantiles_give_the_router_the_law_s_p_late(day: str, hour: float) -> None:
    law = _law(day, hour, [0.05, 0.25, 0.3, 0.7], [0, 2, 1, 1])
    p50, p90 = encode(law, PROMISE)
    assert np.isfinite(p90).all() and (p90 >= p50).all()
    got = [lateness(a, b, PROMISE)[0] for a, b in zip(p50, p90, strict=True)]
    want = np.clip(law.p_late, 1e-4, 1 - 1e-4)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-3)


def test_order_lateness_floor_is_the_worst_line_s_best_node() -> None:
    law = {("0", "A"): 0.02, ("0", "B"): 0.30, ("1", "A"): 0.10, ("1", "B"): 0.05}
    floor, chosen = order_lateness(law, [{"line_id": "0", "node_id": "B"}])
    assert floor == pytest.approx(0.05)  # line 1 cannot do better than 5 %
    assert chosen == pytest.approx(0.30)
    # both lines in one parcel from A: late with the worse line's chance
    _, one_parcel = order_lateness(
        law, [{"line_id": "0", "node_id": "A"}, {"line_id": "1", "node_id": "A"}]
    )
    assert one_parcel == pytest.approx(0.10)
    # two parcels: late when either is
    _, split = order_lateness(
        law, [{"line_id": "0", "node_id": "A"}, {"line_id": "1", "node_id": "B"}]
    )
    assert split == pytest.approx(1 - 0.98 * 0.95)


def test_oracle_replaces_delivery_quantiles_keeps_stockout_risk() -> None:
    from types import SimpleNamespace

    from routing.domain import OrderLine, PredictionArrays
    from simulation.scales import scale_config
    from simulation.simulator import Simulator

    sim = Simulator(scale_config("small"), 5)
    ids = [str(n) for n in sim.net.node_id]
    world = SimpleNamespace(sim=sim, node_index={n: i for i, n in enumerate(ids)})
    oracle = OracleDelivery(world=world)
    preds = PredictionArrays()
    stock = np.linspace(0.0, 0.5, len(ids))
    preds.add("0", ids, stock, np.full(len(ids), 2.0), np.full(len(ids), 3.0))
    order = SimpleNamespace(
        dest_lat=41.88,
        dest_lon=-87.63,
        dest_region="IL",
        lines=(OrderLine(line_id="0", sku="S", qty=1, weight_kg=2.0),),
    )
    runtime = SimpleNamespace(policy=Policy.default())
    now = datetime(2025, 3, 5, 16, 0, tzinfo=UTC)  # Wednesday, after the stores' pick-up
    out = oracle._replace(preds, order, runtime, now)
    line = out.lines["0"]
    np.testing.assert_array_equal(line.p_stockout, stock)
    assert not np.allclose(line.days_p50, 2.0)
    p_late = np.array([oracle._law[("0", n)] for n in ids])
    got = np.array(
        [lateness(a, b, PROMISE)[0] for a, b in zip(line.days_p50, line.days_p90, strict=True)]
    )
    np.testing.assert_allclose(got, np.clip(p_late, 1e-4, 1 - 1e-4), atol=1e-3)
    # stores (slow hand-over, 15:00 pick-up gone) are later than DCs on this order
    dc = sim.net.node_type == 0
    store = sim.net.node_type == 1
    assert p_late[store].mean() > p_late[dc].mean()
