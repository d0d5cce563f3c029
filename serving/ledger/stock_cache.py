"""Availability of the SKUs decisions ask for, kept in process between the movements that
change it.

Every decision needs the live availability of its order's SKUs at every node. Reading them
from the ledger per order (one SELECT, a row object per node×SKU) was the decision's stock
stage; here each SKU's rows are read once and kept until the movement log says the SKU moved.

Before answering, ``get`` follows the movement log (one indexed read that usually returns
nothing, ``live.MovementCursor``) and drops the SKUs any new movement touched; only those,
and SKUs never read or read more than ``max_age`` seconds ago, are read again. Every write
that changes on-hand or reserved logs its movement in the same transaction
(``stock_ops.move``), so after the follow an entry reflects every movement committed before
it, from any process. What still bounds staleness is ``max_age``: writes that bypass the log
(manual SQL, restores) and, on PostgreSQL, a movement whose transaction commits more than
``max_age`` after it took its id (the cursor stops asking for such an id).

Only a routing hint, like the capacity counts: the reservation re-checks each row under its
lock, and a lost race calls ``forget`` for the SKUs it lost on before routing once more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from serving.ledger.ledger import Ledger
    from serving.ledger.live import MovementCursor

T = TypeVar("T")
#: (node_id, sku, available) as ``Ledger.available_rows`` answers
Row = tuple[str, str, int]


class StockCache(Generic[T]):
    """Per-SKU availability, re-read only when the movement log says it moved (or it aged).

    ``make(sku, rows)`` turns one SKU's rows (in the ledger's order) into what callers keep
    (the routing rows of known nodes); its result is shared by every caller until the SKU
    moves, so it must not be mutated."""

    def __init__(
        self,
        ledger: Ledger,
        make: Callable[[str, Sequence[Row]], T],
        *,
        max_age: float = 2.0,
        max_skus: int = 20_000,
        follow_limit: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.make = make
        self.max_age = max_age
        self.max_skus = max_skus
        self.follow_limit = follow_limit
        self.clock = clock
        self._cursor: MovementCursor | None = None
        #: sku → (monotonic time its read began, what ``make`` built); oldest read first
        self._entries: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()
        self.reads = 0  # SKUs read from the ledger (tests and benchmarks count them)

    def get(self, skus: Iterable[str]) -> dict[str, T]:
        """What ``make`` built for each of ``skus``, current as of this call."""
        wanted = list(dict.fromkeys(skus))
        with self._lock:
            entries = self._entries
            # Follow the log before reading stock: a movement committed between the two is
            # in the read and dropped again by the next follow, never lost.
            now = self.clock()
            if self._cursor is None:
                self._cursor = self.ledger.movement_cursor(gap_seconds=self.max_age)
                entries.clear()
            else:
                moved = self.ledger.follow(self._cursor, self.follow_limit)
                if len(moved) >= self.follow_limit:
                    entries.clear()
                else:
                    for row in moved:
                        entries.pop(row[2], None)
            oldest = now - self.max_age
            stale = [s for s in wanted if s not in entries or entries[s][0] < oldest]
            if stale:
                self._read(stale, now)
            return {s: entries[s][1] for s in wanted}

    def _read(self, skus: list[str], began: float) -> None:
        by_sku: dict[str, list[Row]] = {s: [] for s in skus}
        for row in self.ledger.available_rows(skus):
            rows = by_sku.get(row[1])
            if rows is not None:
                rows.append(row)
        entries = self._entries
        for sku, rows in by_sku.items():
            entries.pop(sku, None)  # re-inserted last: the dict stays oldest read first
            entries[sku] = (began, self.make(sku, rows))
        self.reads += len(skus)
        if len(entries) > self.max_skus:
            for sku in list(entries)[: len(entries) - self.max_skus]:
                del entries[sku]

    def forget(self, skus: Iterable[str] | None = None) -> None:
        """Read these SKUs (every SKU when ``None``) from the ledger on next use: after a
        reservation found less stock than the cache said, or when the known nodes change."""
        with self._lock:
            if skus is None:
                self._entries.clear()
            else:
                for sku in skus:
                    self._entries.pop(sku, None)
