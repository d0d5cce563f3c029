"""The routing stock cache answers what the ledger holds: it re-reads a SKU after any movement
of it committed by this process, another connection or another process (on PostgreSQL also
one that commits after a movement with a higher id), and after ``max_age`` whatever happened;
and it reads nothing when nothing moved."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from routing.domain import RejectReason
from serving.ledger import InitialStock, InsufficientStock, InventoryEvent, Ledger
from serving.ledger.live import MovementCursor
from serving.ledger.stock_cache import Row, StockCache
from serving.ledger.tables import movements, stock

REPO = Path(__file__).resolve().parents[3]


class Ticks:
    """A monotonic clock the test moves (entries age only when it says so)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _avail(sku: str, rows: Sequence[Row]) -> dict[str, int]:
    return {node: available for node, _, available in rows}


def _cache(ledger: Ledger, ticks: Ticks, max_age: float = 2.0) -> StockCache[dict[str, int]]:
    return StockCache(ledger, _avail, max_age=max_age, clock=ticks)


def _delta(ledger: Ledger, eid: str, node: str, sku: str, qty: int) -> None:
    ledger.adjust([InventoryEvent(eid, ledger.clock(), node, sku, "delta", qty)])


def test_nothing_moved_reads_nothing_and_a_movement_rereads_only_its_sku(ledger: Ledger) -> None:
    cache = _cache(ledger, Ticks())
    assert cache.get(["A", "B", "ZZ"]) == {
        "A": {"dc1": 10, "st1": 3},
        "B": {"dc1": 5, "st2": 7},
        "ZZ": {},
    }
    reads = cache.reads
    assert cache.get(["B", "A"])["A"] == {"dc1": 10, "st1": 3}
    assert cache.reads == reads
    ledger.reserve_order("o1", [("1", "dc1", "A", 4)], request_hash="h", plan={})
    assert cache.get(["A", "B"]) == {"A": {"dc1": 6, "st1": 3}, "B": {"dc1": 5, "st2": 7}}
    assert cache.reads == reads + 1  # A again, B still current
    ledger.cancel_order("o1")
    _delta(ledger, "e1", "st2", "ZZ", 2)  # a row first seen
    assert cache.get(["A", "ZZ"]) == {"A": {"dc1": 10, "st1": 3}, "ZZ": {"st2": 2}}


def test_every_stock_writer_is_seen(ledger: Ledger, engine: Engine) -> None:
    """Each way on-hand or reserved changes logs a movement the cache follows."""
    cache = _cache(ledger, Ticks())
    ledger.reserve_order(
        "o1", [("1", "dc1", "A", 2), ("2", "st2", "B", 1)], request_hash="h", plan={}
    )
    assert cache.get(["A", "B"]) == {"A": {"dc1": 8, "st1": 3}, "B": {"dc1": 5, "st2": 6}}
    ledger.ship_order("o1", ["1"])
    ledger.load_stock([InitialStock("st1", "A", 9)], event_time=ledger.clock())
    assert cache.get(["A"])["A"] == {"dc1": 8, "st1": 9}
    ledger.reject_allocation("o1", "st2", ["2"], RejectReason.NOT_IN_STOCK)
    _delta(ledger, "e1", "dc1", "A", 5)
    ret = ledger.create_return("o1", node_id="st1", why="nearest", reason=None, lines=[("1", 1)])
    ledger.receive_return(ret.return_id, [("1", 1, "resellable")])
    assert cache.get(["A", "B"]) == {
        "A": dict(ledger_rows(ledger, "A")),
        "B": dict(ledger_rows(ledger, "B")),
    }
    # a write that bypasses the log, then the drift repair that puts the row back
    _set_on_hand(engine, "dc1", "B", 1)
    assert ledger.check(repair=True).drifted
    assert cache.get(["B"])["B"] == dict(ledger_rows(ledger, "B"))


def ledger_rows(ledger: Ledger, sku: str) -> list[tuple[str, int]]:
    return [(n, a) for n, _, a in ledger.available_rows([sku])]


def test_entries_older_than_max_age_are_read_again(ledger: Ledger, engine: Engine) -> None:
    """The hard bound: a write the log never saw shows once the entry is ``max_age`` old."""
    ticks = Ticks()
    cache = _cache(ledger, ticks, max_age=2.0)
    assert cache.get(["A"])["A"]["dc1"] == 10
    _set_on_hand(engine, "dc1", "A", 4)  # manual SQL: no movement
    ticks.now += 1.9
    assert cache.get(["A"])["A"]["dc1"] == 10
    ticks.now += 0.2
    assert cache.get(["A"])["A"]["dc1"] == 4
    _set_on_hand(engine, "dc1", "A", 10)  # back, for the invariants check


def test_a_lost_race_forgets_the_skus_it_lost_on(ledger: Ledger, engine: Engine) -> None:
    """Whatever the cache missed, the retry after a lost reservation routes on the ledger."""
    cache = _cache(ledger, Ticks())
    assert cache.get(["A", "B"])["A"]["dc1"] == 10
    _set_on_hand(engine, "dc1", "A", 2)  # a change the log never saw
    with pytest.raises(InsufficientStock) as lost:
        # routed on the cache's 10 at dc1: the ledger re-checks under its row lock
        ledger.reserve_order("o2", [("1", "dc1", "A", 5)], request_hash="h2", plan={})
    assert cache.get(["A"])["A"]["dc1"] == 10
    cache.forget(m.sku for m in lost.value.missing)
    assert cache.get(["A"])["A"]["dc1"] == 2
    _set_on_hand(engine, "dc1", "A", 10)  # back, for the invariants check


def _set_on_hand(engine: Engine, node: str, sku: str, on_hand: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(stock).where(stock.c.node_id == node, stock.c.sku == sku).values(on_hand=on_hand)
        )


_OTHER_PROCESS = """
import sys
from datetime import UTC, datetime
from serving.ledger import InventoryEvent, Ledger, make_engine
ledger = Ledger(make_engine(sys.argv[1]))
ledger.reserve_order("p1", [("1", "st1", "A", 2)], request_hash="hp", plan={})
ledger.adjust([InventoryEvent("p-e1", ledger.clock(), "dc1", "B", "delta", -3)])
"""


def test_writes_of_another_process_are_seen(ledger: Ledger, engine: Engine) -> None:
    """Two server workers are two processes, each with its own cache."""
    cache = _cache(ledger, Ticks())
    cache.get(["A", "B"])
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", _OTHER_PROCESS, url], check=True, env=env, cwd=REPO)
    assert cache.get(["A", "B"]) == {"A": {"dc1": 10, "st1": 1}, "B": {"dc1": 2, "st2": 7}}


def _open_movement(engine: Engine, ledger: Ledger, node: str, sku: str, qty: int) -> Any:
    """A transaction that has written a movement (so holds its id) and not committed yet."""
    conn = engine.connect()
    tx = conn.begin()
    conn.execute(
        update(stock)
        .where(stock.c.node_id == node, stock.c.sku == sku)
        .values(on_hand=stock.c.on_hand + qty)
    )
    conn.execute(
        insert(movements).values(
            at=ledger.clock(),
            event_time=ledger.clock(),
            node_id=node,
            sku=sku,
            kind="delta",
            d_on_hand=qty,
            d_reserved=0,
            d_shipped=0,
        )
    )
    return conn, tx


def test_a_movement_committing_after_a_higher_id_is_not_lost(
    ledger: Ledger, engine: Engine
) -> None:
    """PostgreSQL hands out ids at INSERT and commits in any order: ``id > last seen`` would
    miss A's movement for good (until max_age, which this clock never reaches)."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: ids commit in id order")
    cache = _cache(ledger, Ticks())
    cache.get(["A", "B"])
    conn, tx = _open_movement(engine, ledger, "dc1", "A", 5)  # takes id n
    try:
        _delta(ledger, "e1", "st2", "B", 1)  # takes n + 1 and commits first
        assert cache.get(["A", "B"]) == {"A": {"dc1": 10, "st1": 3}, "B": {"dc1": 5, "st2": 8}}
        tx.commit()
    finally:
        conn.close()
    assert cache.get(["A"])["A"] == {"dc1": 15, "st1": 3}


def test_a_cache_started_while_a_movement_is_in_flight_sees_it(
    ledger: Ledger, engine: Engine
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: ids commit in id order")
    conn, tx = _open_movement(engine, ledger, "dc1", "A", 5)
    try:
        _delta(ledger, "e1", "st2", "B", 1)
        cache = _cache(ledger, Ticks())
        assert cache.get(["A"])["A"]["dc1"] == 10
        tx.commit()
    finally:
        conn.close()
    assert cache.get(["A"])["A"]["dc1"] == 15


def test_cursor_forgets_gaps_after_gap_seconds() -> None:
    ticks = Ticks()
    cur = MovementCursor(5, gap_seconds=2.0, clock=ticks)
    cur.advance([], [(7, "n", "A", "delta", None), (10, "n", "A", "delta", None)])
    assert (cur.high, sorted(cur.gaps)) == (10, [6, 8, 9])
    ticks.now += 1.0
    cur.advance([(8, "n", "A", "delta", None)], [(11, "n", "A", "delta", None)])
    assert sorted(cur.gaps) == [6, 9]
    ticks.now += 1.5
    cur.advance([], [(13, "n", "A", "delta", None)])
    assert sorted(cur.gaps) == [12]


def test_cached_entries_are_shared_until_the_sku_moves(ledger: Ledger) -> None:
    cache = _cache(ledger, Ticks())
    first = cache.get(["A"])["A"]
    assert cache.get(["A"])["A"] is first
    ledger.load_stock([InitialStock("dc1", "A", 11)], event_time=ledger.clock())
    assert cache.get(["A"])["A"] is not first
