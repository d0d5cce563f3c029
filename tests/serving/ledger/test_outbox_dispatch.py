"""The webhook dispatcher against a real local HTTP receiver, on SQLite and PostgreSQL: signed
per Standard Webhooks, retried with exponential back-off, dead-lettered, replayed on demand."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from ledger_testkit import Clock

from serving.ledger import Ledger
from serving.ledger.outbox import OutboxConfig
from serving.settings import WebhookEndpoint
from serving.webhooks import Dispatcher, backoff, sign
from tests.serving.webhook_receiver import SECRET, Receiver, verify


@pytest.fixture
def clock() -> Clock:
    # receivers reject signatures whose timestamp is far from their own clock
    return Clock(datetime.now(UTC))


def _dispatcher(ledger: Ledger, receiver: Receiver, clock: Clock, **kw: float) -> Dispatcher:
    ledger.outbox = OutboxConfig(endpoints=("erp",))
    return Dispatcher(
        ledger,
        [WebhookEndpoint(**receiver.endpoint("erp"))],
        backoff_seconds=2.0,
        backoff_cap_seconds=60.0,
        timeout_seconds=5.0,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def test_signature_matches_the_specification_test_vector() -> None:
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n, 2.0, 10.0).total_seconds() for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def test_receiver_check_refuses_a_wrong_secret() -> None:
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    ts = int(datetime.now(UTC).timestamp())
    headers = {"webhook-id": "evt_1", "webhook-timestamp": str(ts)}
    good = {**headers, "webhook-signature": sign(SECRET, "evt_1", ts, b"{}")}
    bad = {**headers, "webhook-signature": sign(other, "evt_1", ts, b"{}")}
    assert verify(SECRET, good, b"{}")
    assert not verify(SECRET, bad, b"{}")
    assert not verify(SECRET, good, b'{"tampered":1}')


def test_delivers_signed_in_order_after_retries(ledger: Ledger, clock: Clock) -> None:
    with Receiver() as receiver:
        dispatcher = _dispatcher(ledger, receiver, clock)
        try:
            ledger.reserve_order("o1", [("l1", "dc1", "A", 1)], request_hash="h", plan={})
            ledger.ship_order("o1")
            receiver.fail_next = 1  # the first attempt of order.placed gets a 503
            first = dispatcher.run_once()
            # order.placed failed, so shipment.created for the same order waits behind it
            assert (first.delivered, first.failed) == (0, 1)
            assert receiver.unique() == {}
            assert dispatcher.run_once().attempted == 0  # not due yet: back-off
            clock.advance(seconds=2.1)
            second = dispatcher.run_once()
            assert second.delivered == 2
        finally:
            dispatcher.stop()
        got = list(receiver.unique().values())
        assert [r.payload["type"] for r in got] == ["order.placed", "shipment.created"]
        assert [r.payload["sequence"] for r in got] == [1, 2]
        assert all(r.valid for r in got)
    placed = ledger.events(order_id="o1")[0]
    assert (placed.deliveries[0].status, placed.deliveries[0].attempts) == ("delivered", 2)


def test_dead_letter_then_redeliver(ledger: Ledger, clock: Clock) -> None:
    with Receiver() as receiver:
        dispatcher = _dispatcher(ledger, receiver, clock, max_attempts=3)
        try:
            ledger.reserve_order("o2", [("l1", "dc1", "B", 1)], request_hash="h", plan={})
            receiver.refuse_all = True
            for _ in range(3):
                dispatcher.run_once()
                clock.advance(minutes=5)
            (event,) = ledger.events(order_id="o2")
            assert (event.deliveries[0].status, event.deliveries[0].attempts) == ("dead", 3)
            assert "HTTP 503" in (event.deliveries[0].last_error or "")
            assert dispatcher.run_once().attempted == 0  # dead letters are not retried
            receiver.refuse_all = False
            ledger.redeliver(event.event_id, ["erp"])
            assert dispatcher.run_once().delivered == 1
        finally:
            dispatcher.stop()
        assert set(receiver.unique()) == {event.event_id}


def test_unreachable_receiver_is_retried_not_lost(ledger: Ledger, clock: Clock) -> None:
    with Receiver() as receiver:
        port = receiver.port
    # nobody listens on ``port`` now
    endpoint = {"name": "erp", "url": f"http://127.0.0.1:{port}/hooks", "secret": receiver.secret}
    ledger.outbox = OutboxConfig(endpoints=("erp",))
    dispatcher = Dispatcher(ledger, [WebhookEndpoint(**endpoint)], clock=clock, timeout_seconds=2)
    try:
        ledger.reserve_order("o3", [("l1", "dc1", "A", 1)], request_hash="h", plan={})
        stats = dispatcher.run_once()
        assert stats.failed == 1 and "ConnectError" in stats.errors[0]
    finally:
        dispatcher.stop()
    (event,) = ledger.events(order_id="o3")
    d = event.deliveries[0]
    assert d.status == "pending" and d.next_attempt_at > clock.now + timedelta(seconds=4)
