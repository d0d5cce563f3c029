"""The routing hint of orders per node today counts what the reservation's own per-node count
does, node by node, across time zones (one grouped read per local midnight)."""

from __future__ import annotations

from ledger_testkit import Clock

from serving.ledger import Ledger
from serving.ledger import orders as order_ops


def _per_node(ledger: Ledger) -> dict[str, int]:
    at = ledger.clock()
    with ledger.engine.connect() as conn:
        return {
            n.node_id: order_ops.orders_taken(
                conn, n.node_id, order_ops.start_of_local_day(at, n.timezone)
            )
            for n in ledger.nodes()
        }


def test_orders_today_counts_each_node_in_its_local_day(ledger: Ledger, clock: Clock) -> None:
    clock.advance(hours=-11)  # 01:00 UTC: the previous local day in São Paulo (UTC-3)
    ledger.reserve_order(
        "y1", [("1", "dc1", "A", 1), ("2", "st2", "B", 1)], request_hash="a", plan={}
    )
    clock.advance(hours=11)  # 12:00 UTC: a new day everywhere
    ledger.reserve_order(
        "t1", [("1", "dc1", "A", 1), ("2", "dc1", "B", 1)], request_hash="b", plan={}
    )
    ledger.reserve_order("t2", [("1", "st1", "A", 1)], request_hash="c", plan={})
    ledger.reserve_order("t3", [("1", "dc1", "A", 1)], request_hash="d", plan={})
    ledger.cancel_order("t3")
    expected = {"dc1": 1, "st1": 1, "st2": 1}  # y1 was today at st2 (UTC)
    assert _per_node(ledger) == expected
    assert ledger.orders_today(every_node=True) == expected
    assert ledger.orders_today() == expected  # every fixture node is capacity-limited
    clock.advance(hours=-10)  # 02:00 UTC: y1 falls in the same São Paulo day again
    again = {"dc1": 2, "st1": 1, "st2": 1}
    assert ledger.orders_today(every_node=True) == _per_node(ledger) == again
