"""Signed event delivery (Standard Webhooks) from the ledger's transactional outbox.

Each request carries ``webhook-id`` (the event id, stable across retries so receivers can
deduplicate), ``webhook-timestamp`` (seconds) and ``webhook-signature``:
``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), where the key is the base64
part of the endpoint's ``whsec_`` secret. A 2xx answer marks the delivery done; anything else
(or no answer) retries with exponential back-off until ``max_attempts``, then the delivery is
dead-lettered (``POST /v1/events/{id}/redeliver`` queues it again).

The ``standardwebhooks`` package is not available from this project's package index, so the
signing scheme (a few lines of ``hmac``) lives here, checked against the specification's
published test vector in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx

from serving.ledger import Ledger
from serving.ledger.outbox import DueDelivery
from serving.settings import Settings, WebhookEndpoint

log = logging.getLogger("routecast.webhooks")


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def body_of(payload: dict[str, object]) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys in a stable order."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def backoff(attempt: int, base: float, cap: float) -> timedelta:
    """Delay after the ``attempt``-th failure: base, 2·base, 4·base, … capped."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempt - 1)))


@dataclass(slots=True)
class DispatchStats:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.dead


class Dispatcher:
    """Works the outbox queue: lease due deliveries, send them signed, record each answer."""

    def __init__(
        self,
        ledger: Ledger,
        endpoints: Sequence[WebhookEndpoint],
        *,
        max_attempts: int = 12,
        backoff_seconds: float = 5.0,
        backoff_cap_seconds: float = 3600.0,
        timeout_seconds: float = 10.0,
        lease_seconds: float = 60.0,
        batch: int = 100,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ledger = ledger
        self.endpoints = {e.name: e for e in endpoints}
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.backoff_cap_seconds = backoff_cap_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self.clock = clock or (lambda: datetime.now(UTC))
        self._client = httpx.Client(timeout=timeout_seconds, follow_redirects=False)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, ledger: Ledger, settings: Settings) -> Dispatcher:
        return cls(
            ledger,
            settings.webhooks,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
            backoff_cap_seconds=settings.webhook_backoff_cap_seconds,
            timeout_seconds=settings.webhook_timeout_seconds,
            lease_seconds=settings.webhook_lease_seconds,
        )

    # -- one pass ------------------------------------------------------------------------
    def run_once(self) -> DispatchStats:
        """Send every delivery due now (one leased batch at a time) and record the answers."""
        stats = DispatchStats()
        if not self.endpoints:
            return stats
        while True:
            due = self.ledger.claim_deliveries(
                list(self.endpoints), lease=self.lease, limit=self.batch
            )
            if not due:
                return stats
            blocked: dict[tuple[str, str], datetime] = {}
            for item in due:
                lane = (item.endpoint, item.subject)
                if lane in blocked:
                    # keep a subject's events in sequence: later ones wait for the failed one
                    self.ledger.defer_delivery(item.event_id, item.endpoint, until=blocked[lane])
                    continue
                retry_at = self._deliver(item, stats)
                if retry_at is not None:
                    blocked[lane] = retry_at
            if len(due) < self.batch or stats.attempted >= 10 * self.batch:
                return stats

    def _deliver(self, item: DueDelivery, stats: DispatchStats) -> datetime | None:
        """Send one delivery; ``None`` when done (delivered or dead), else when to retry."""
        endpoint = self.endpoints[item.endpoint]
        body = body_of(item.payload)
        timestamp = int(self.clock().timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": item.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(endpoint.secret, item.event_id, timestamp, body),
            "user-agent": "routecast-webhooks",
        }
        status: int | None = None
        try:
            response = self._client.post(endpoint.url, content=body, headers=headers)
            status = response.status_code
            ok = 200 <= status < 300
            error = None if ok else f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        attempts = item.attempts + 1
        if ok:
            stats.delivered += 1
            retry_at = None
        elif attempts >= self.max_attempts:
            stats.dead += 1
            retry_at = None
            log.warning(
                "event %s to %s dead after %d attempts", item.event_id, endpoint.name, attempts
            )
        else:
            stats.failed += 1
            retry_at = self.clock() + backoff(
                attempts, self.backoff_seconds, self.backoff_cap_seconds
            )
        if error:
            stats.errors.append(f"{item.event_id} → {endpoint.name}: {error}")
        self.ledger.record_delivery(
            item.event_id,
            item.endpoint,
            ok=ok,
            next_attempt_at=retry_at,
            http_status=status,
            error=error,
        )
        return retry_at

    # -- background ------------------------------------------------------------------------
    def start(self, interval: float) -> None:
        """Run passes in a daemon thread every ``interval`` seconds (sooner after ``wake``)."""
        if self._thread is not None or not self.endpoints:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:  # a database hiccup must not kill delivery for good
                    log.exception("webhook dispatch pass failed")
                self._wake.wait(interval)
                self._wake.clear()

        self._thread = threading.Thread(target=loop, name="routecast-webhooks", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._client.close()
