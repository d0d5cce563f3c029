"""The claim → route → reserve protocol the HTTP layer runs around every placement."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_testkit import Clock, level

from serving.ledger import (
    IdempotencyInFlight,
    IdempotencyMismatch,
    InsufficientStock,
    Ledger,
    Reservation,
)


def _body(res: Reservation) -> dict[str, Any]:
    return {"order": res.order_id, "lines": len(res.allocations)}


def test_claim_reserve_replay(ledger: Ledger) -> None:
    assert ledger.begin_idempotent("k", "h1").state == "claimed"
    with pytest.raises(IdempotencyInFlight):
        ledger.begin_idempotent("k", "h1")
    with pytest.raises(IdempotencyMismatch):
        ledger.begin_idempotent("k", "h2")
    res = ledger.reserve_order(
        "o1",
        [("l1", "dc1", "A", 2)],
        idempotency_key="k",
        request_hash="h1",
        plan={},
        response_builder=_body,
        http_status=201,
    )
    assert res.response == {"order": "o1", "lines": 1} and res.http_status == 201
    replay = ledger.begin_idempotent("k", "h1")
    assert (replay.state, replay.response, replay.http_status, replay.order_id) == (
        "replay",
        {"order": "o1", "lines": 1},
        201,
        "o1",
    )
    again = ledger.reserve_order(
        "o1", [("l1", "dc1", "A", 2)], idempotency_key="k", request_hash="h1", plan={}
    )
    assert again.replayed and again.response == res.response
    assert level(ledger, "dc1", "A").reserved == 2


def test_reused_key_with_another_body_is_refused_without_reserving(ledger: Ledger) -> None:
    ledger.reserve_order(
        "o1", [("l1", "dc1", "A", 2)], idempotency_key="k", request_hash="h1", plan={}
    )
    with pytest.raises(IdempotencyMismatch):
        ledger.reserve_order(
            "o2", [("l1", "dc1", "A", 5)], idempotency_key="k", request_hash="h2", plan={}
        )
    assert level(ledger, "dc1", "A").reserved == 2


def test_failed_placement_releases_the_claim(ledger: Ledger) -> None:
    ledger.begin_idempotent("k", "h")
    with pytest.raises(InsufficientStock):
        ledger.reserve_order(
            "o1", [("l1", "dc1", "A", 99)], idempotency_key="k", request_hash="h", plan={}
        )
    assert ledger.begin_idempotent("k", "h").state == "claimed"
    ok = ledger.reserve_order(
        "o1", [("l1", "dc1", "A", 9)], idempotency_key="k", request_hash="h", plan={}
    )
    assert not ok.replayed and level(ledger, "dc1", "A").reserved == 9


def test_abandoned_claim_is_taken_over_after_it_goes_stale(ledger: Ledger, clock: Clock) -> None:
    """A claim whose request died (or lost the database before it could release) blocks
    retries for seconds, not minutes."""
    ledger.begin_idempotent("k", "h")
    clock.advance(seconds=5)
    with pytest.raises(IdempotencyInFlight):
        ledger.begin_idempotent("k", "h")
    clock.advance(seconds=11)
    assert ledger.begin_idempotent("k", "h").state == "claimed"
    ledger.release_idempotent("k", "h")


def test_done_keys_are_never_released(ledger: Ledger) -> None:
    ledger.begin_idempotent("k", "h")
    ledger.complete_idempotent("k", "h", response={"dry_run": True}, http_status=200)
    assert ledger.release_idempotent("k", "h") is False
    state = ledger.begin_idempotent("k", "h")
    assert (state.state, state.response, state.http_status) == ("replay", {"dry_run": True}, 200)
