"""A real HTTP webhook receiver for tests: verifies Standard Webhooks signatures on its own
(written from the specification, not by calling routecast's signer) and records every request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_" + base64.b64encode(b"routecast-test-secret-0123456789").decode()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    given = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if "," in s]
    return any(hmac.compare_digest(expected, g) for g in given)


@dataclass(frozen=True)
class Received:
    webhook_id: str
    valid: bool
    payload: dict[str, Any]


class Receiver:
    """``ThreadingHTTPServer`` on an ephemeral 127.0.0.1 port; ``fail_next`` answers 503 first."""

    def __init__(self, secret: str = SECRET, port: int = 0) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self.fail_next = 0
        self.refuse_all = False
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with outer._lock:
                    failing = outer.refuse_all or outer.fail_next > 0
                    if outer.fail_next > 0:
                        outer.fail_next -= 1
                    if not failing:
                        outer.received.append(
                            Received(
                                headers.get("webhook-id", ""),
                                verify(outer.secret, headers, body),
                                json.loads(body),
                            )
                        )
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def endpoint(self, name: str = "erp") -> dict[str, str]:
        return {"name": name, "url": self.url, "secret": self.secret}

    def unique(self) -> dict[str, Received]:
        """Deliveries deduplicated by ``webhook-id`` (at-least-once means duplicates may come)."""
        with self._lock:
            return {r.webhook_id: r for r in self.received}

    def wait_for(self, ids: set[str], timeout: float = 30.0) -> dict[str, Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.unique()
            if ids <= set(got):
                return got
            time.sleep(0.05)
        missing = ids - set(self.unique())
        raise AssertionError(
            f"receiver still misses {len(missing)} event(s): {sorted(missing)[:5]}"
        )
