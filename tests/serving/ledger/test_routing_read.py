"""The routing read through the driver's cursor answers exactly what ``availability`` does:
same rows, same order, reservations included, unknown SKUs absent."""

from __future__ import annotations

from serving.ledger import Ledger
from serving.ledger.stock_ops import CHUNK


def _projected(ledger: Ledger, skus: list[str]) -> list[tuple[str, str, int]]:
    return [(lv.node_id, lv.sku, lv.available) for lv in ledger.availability(skus)]


def test_routing_read_matches_availability(ledger: Ledger) -> None:
    ledger.reserve_order("o1", [("1", "dc1", "A", 4)], request_hash="h", plan={})
    for skus in (["A"], ["B", "A", "A"], ["A", "B", "ZZ"], ["ZZ"]):
        assert ledger.available_rows(skus) == _projected(ledger, skus)
    assert ledger.available_rows(["A"]) == [("dc1", "A", 6), ("st1", "A", 3)]
    assert ledger.available_rows([]) == []


def test_routing_read_of_more_skus_than_one_statement_takes(ledger: Ledger) -> None:
    skus = ["A", "B", *(f"X{i:04d}" for i in range(CHUNK + 10))]
    assert ledger.available_rows(skus) == _projected(ledger, skus)
