"""The rejection rules the ledger applies: what each reason writes off, closes or escalates."""

from __future__ import annotations

from routing import RejectReason
from routing.rejections import becomes_exception, closes_node, stock_to_drop


def test_each_reason_writes_off_what_it_says() -> None:
    assert stock_to_drop(RejectReason.NOT_IN_STOCK, available=7, rejected_qty=2) == 7
    assert stock_to_drop(RejectReason.DAMAGED, available=7, rejected_qty=2) == 2
    assert stock_to_drop(RejectReason.DAMAGED, available=1, rejected_qty=2) == 1
    assert stock_to_drop(RejectReason.CAPACITY, available=7, rejected_qty=2) == 0


def test_only_capacity_closes_the_node_and_repeats_escalate() -> None:
    assert [closes_node(r) for r in RejectReason] == [False, False, True]
    assert not becomes_exception(2, 3) and becomes_exception(3, 3)
