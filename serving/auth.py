"""API keys with scopes: stored as SHA-256 digests, compared in constant time.

A key reads ``rc_<key_id>_<secret>``; only ``key_id``, the digest of the whole key and its
scopes are stored. Keys are 256-bit random, so a fast digest is enough (no password
stretching needed), and the lookup by ``key_id`` keeps verification O(1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal, Protocol

Scope = Literal["route", "orders", "inventory", "admin"]
SCOPES: tuple[Scope, ...] = ("route", "orders", "inventory", "admin")


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    digest: str
    scopes: frozenset[str]
    name: str = ""
    revoked: bool = False


class KeyStore(Protocol):
    def get(self, key_id: str) -> StoredKey | None: ...

    def add(self, key: StoredKey) -> None: ...


def digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def new_key(scopes: set[str] | frozenset[str], name: str = "") -> tuple[str, StoredKey]:
    """Return (the raw key to hand out once, what to store)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s) {sorted(unknown)}; choose from {', '.join(SCOPES)}")
    key_id = secrets.token_hex(6)
    raw = f"rc_{key_id}_{secrets.token_urlsafe(32)}"
    return raw, StoredKey(key_id=key_id, digest=digest(raw), scopes=frozenset(scopes), name=name)


def parse_key_id(raw_key: str) -> str | None:
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != "rc" or not parts[1]:
        return None
    return parts[1]


def authenticate(store: KeyStore, raw_key: str | None) -> StoredKey | None:
    """The stored key ``raw_key`` proves, or ``None`` (unknown, wrong secret, revoked)."""
    if not raw_key:
        return None
    key_id = parse_key_id(raw_key)
    stored = store.get(key_id) if key_id else None
    expected = stored.digest if stored else digest("rc_missing_" + "0" * 43)
    ok = (
        hmac.compare_digest(expected, digest(raw_key)) and stored is not None and not stored.revoked
    )
    return stored if ok else None


def allows(key: StoredKey, scope: str) -> bool:
    """``admin`` implies every scope."""
    return scope in key.scopes or "admin" in key.scopes
