"""Console sessions: a signed, short-lived cookie naming the API key's id (never the key),
and a CSRF token bound to the session for every form.

The cookie holds ``<key_id>.<expiry>.<nonce>.<signature>``; the signature is an HMAC-SHA256
over the rest with a server secret. Each request re-reads the key from the key store, so a
revoked key ends its sessions at once and scopes always come from the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from serving.auth import KeyStore, StoredKey, allows
from serving.settings import Settings

COOKIE = "rc_console"
#: The anonymous cookie of the sign-in page (its CSRF token is bound to it).
PRE_COOKIE = "rc_console_pre"
SECRET_FILE = "console_secret"


def load_secret(settings: Settings) -> bytes:
    """The signing key: from settings, else a random one kept in ``home`` (created once, mode
    0600) so every worker process of one home signs alike."""
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode()
    path = Path(settings.home) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        value = secrets.token_urlsafe(32).encode()
        out.write(value)
    return value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    expires: int
    nonce: str

    @property
    def signed_in(self) -> bool:
        return bool(self.key_id)


class Sessions:
    def __init__(self, secret: bytes, lifetime_s: int) -> None:
        self._secret = secret
        self.lifetime_s = lifetime_s

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, key_id: str, now: float | None = None) -> tuple[str, Session]:
        """A new session (``key_id`` empty for the anonymous sign-in page) and its cookie."""
        s = Session(key_id, int((now or time.time()) + self.lifetime_s), secrets.token_urlsafe(16))
        payload = f"{s.key_id}.{s.expires}.{s.nonce}"
        return f"{payload}.{self._sign(payload)}", s

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie proves, or ``None`` (missing, forged, expired)."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4:
            return None
        key_id, expires, nonce, sig = parts
        if not hmac.compare_digest(sig, self._sign(f"{key_id}.{expires}.{nonce}")):
            return None
        if not expires.isdigit() or int(expires) <= (now or time.time()):
            return None
        return Session(key_id, int(expires), nonce)

    def csrf_token(self, session: Session) -> str:
        return self._sign(f"csrf.{session.key_id}.{session.nonce}")

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token or "")


def current_key(store: KeyStore, session: Session | None) -> StoredKey | None:
    """The live, unrevoked key behind a signed-in session."""
    if session is None or not session.signed_in:
        return None
    key = store.get(session.key_id)
    return None if key is None or key.revoked else key


#: What each console area needs (the API's scopes; ``admin`` implies every scope).
PAGE_SCOPES = {
    "orders": "orders",
    "nodes": "inventory",
    "edit_nodes": "admin",
    "kpis": "orders",
    "models": "route",
    "shadow": "route",
}


def may(key: StoredKey, area: str) -> bool:
    return allows(key, PAGE_SCOPES[area])
