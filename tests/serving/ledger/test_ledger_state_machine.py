"""Hypothesis state machine of the ledger against a model, on SQLite and PostgreSQL.

Hypothesis chooses sequences of placements (with and without idempotency keys, replays),
cancels, shipments, rejections, receipts and counts; after every step the ledger must agree
with a plain-Python model of stock and orders, and the ledger's own invariants must hold.
Each example works on its own SKU, so examples share a database without interfering.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from ledger_testkit import Clock, level

from serving.ledger import (
    InitialStock,
    InsufficientStock,
    InventoryEvent,
    Ledger,
    OrderStateError,
)

NODES = ("dc1", "st1", "st2")


def machine(ledger: Ledger, clock: Clock) -> Callable[[], RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        orders = Bundle("orders")

        def __init__(self) -> None:
            super().__init__()
            self.sku = f"SM-{uuid.uuid4().hex[:10]}"
            self.on_hand = dict.fromkeys(NODES, 5)
            self.reserved = dict.fromkeys(NODES, 0)
            self.shortfall = dict.fromkeys(NODES, 0)
            self.lines: dict[str, dict[str, list[Any]]] = {}  # order -> line -> [node, qty, state]
            self.events = 0
            ledger.load_stock([InitialStock(n, self.sku, 5) for n in NODES], event_time=clock())

        def _avail(self, node: str) -> int:
            return self.on_hand[node] - self.reserved[node]

        def _set_true(self, node: str, true: int) -> None:
            """The ledger's rule: never drop below what is reserved; keep the gap as shortfall."""
            target = max(true, 0)
            self.on_hand[node] = max(target, self.reserved[node])
            self.shortfall[node] = self.on_hand[node] - target

        @rule(
            target=orders,
            picks=st.lists(
                st.tuples(st.sampled_from(NODES), st.integers(1, 4)), min_size=1, max_size=3
            ),
            keyed=st.booleans(),
        )
        def place(self, picks: list[tuple[str, int]], keyed: bool) -> str:
            oid = f"{self.sku}-o{len(self.lines)}"
            allocs = [(f"l{i}", node, self.sku, qty) for i, (node, qty) in enumerate(picks)]
            need: dict[str, int] = {}
            for _, node, _, qty in allocs:
                need[node] = need.get(node, 0) + qty
            fits = all(self._avail(n) >= q for n, q in need.items())
            key = f"k-{oid}" if keyed else None
            try:
                ledger.reserve_order(oid, allocs, idempotency_key=key, request_hash=oid, plan={})
            except InsufficientStock:
                assert not fits
                self.lines[oid] = {}
                return oid
            assert fits
            for n, q in need.items():
                self.reserved[n] += q
            self.lines[oid] = {lid: [node, qty, "reserved"] for lid, node, _, qty in allocs}
            if keyed:  # the retry of a lost answer replays and reserves nothing more
                again = ledger.reserve_order(
                    oid, allocs, idempotency_key=key, request_hash=oid, plan={}
                )
                assert again.replayed
            return oid

        def _reserved_lines(self, oid: str) -> list[tuple[str, list[Any]]]:
            return [(lid, v) for lid, v in self.lines[oid].items() if v[2] == "reserved"]

        @rule(oid=orders)
        def cancel(self, oid: str) -> None:
            lines = self.lines[oid]
            if not lines:
                return
            if all(v[2] == "shipped" for v in lines.values()):
                with pytest.raises(OrderStateError):
                    ledger.cancel_order(oid)
                return
            ledger.cancel_order(oid)
            for _, v in self._reserved_lines(oid):
                self.reserved[v[0]] -= v[1]
                v[2] = "released"

        @rule(oid=consumes(orders))
        def ship(self, oid: str) -> None:
            lines = self.lines[oid]
            cancelled = lines and all(v[2] in ("released", "rejected") for v in lines.values())
            if not lines or cancelled:
                return
            ledger.ship_order(oid)
            for _, v in self._reserved_lines(oid):
                self.reserved[v[0]] -= v[1]
                self.on_hand[v[0]] -= v[1]
                v[2] = "shipped"

        @rule(oid=orders)
        def reject_damaged(self, oid: str) -> None:
            open_lines = self._reserved_lines(oid)
            if not open_lines or ledger.get_order(oid).status not in (
                "placed",
                "partially_shipped",
            ):
                return
            lid, v = open_lines[0]
            ledger.reject_allocation(oid, v[0], [lid], "damaged")
            self.reserved[v[0]] -= v[1]
            self.on_hand[v[0]] -= min(v[1], self._avail(v[0]))
            v[2] = "rejected"

        @rule(node=st.sampled_from(NODES), qty=st.integers(1, 5))
        def receive(self, node: str, qty: int) -> None:
            clock.advance(seconds=1)
            self.events += 1
            ev = InventoryEvent(f"{self.sku}-r{self.events}", clock(), node, self.sku, "delta", qty)
            [r] = ledger.adjust([ev])
            assert r.outcome == "applied"
            self._set_true(node, self.on_hand[node] - self.shortfall[node] + qty)

        @rule(node=st.sampled_from(NODES), qty=st.integers(0, 12))
        def count(self, node: str, qty: int) -> None:
            clock.advance(seconds=1)
            self.events += 1
            ev = InventoryEvent(f"{self.sku}-c{self.events}", clock(), node, self.sku, "count", qty)
            [r] = ledger.adjust([ev])
            assert r.outcome == "applied"
            self._set_true(node, qty)

        @rule(node=st.sampled_from(NODES))
        def future_count_is_refused(self, node: str) -> None:
            ev = InventoryEvent(
                f"{self.sku}-f", clock() + timedelta(hours=1), node, self.sku, "count", 99
            )
            with pytest.raises(Exception, match="ahead of the ledger clock"):
                ledger.adjust([ev])

        @invariant()
        def agrees_with_the_model(self) -> None:
            for node in NODES:
                lv = level(ledger, node, self.sku)
                assert (lv.on_hand, lv.reserved, lv.shortfall) == (
                    self.on_hand[node],
                    self.reserved[node],
                    self.shortfall[node],
                ), node
                assert lv.available >= 0

        def teardown(self) -> None:
            assert ledger.invariant_violations() == []

    LedgerMachine.TestCase.settings = settings(
        max_examples=10,
        stateful_step_count=12,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    return LedgerMachine


def test_ledger_agrees_with_its_model(ledger: Ledger, clock: Clock) -> None:
    clock.advance(days=2)
    ledger.upsert_nodes([replace(n, daily_capacity=0) for n in ledger.nodes()])
    cls = machine(ledger, clock)
    run_state_machine_as_test(cls, settings=cls.TestCase.settings)  # type: ignore[attr-defined]
