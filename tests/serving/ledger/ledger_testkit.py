"""Helpers shared by the ledger tests (a module with a unique name, not conftest, so imports
cannot pick up another directory's conftest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from serving.ledger import Ledger, StockLevel

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    """Deterministic ledger clock; tests move it forward explicitly."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


def level(ledger: Ledger, node_id: str, sku: str) -> StockLevel:
    """The stock level of one node×SKU (zeros if the ledger has no row)."""
    for row in ledger.availability([sku], node_ids=[node_id]):
        return row
    return StockLevel(node_id, sku, 0, 0, 0)
