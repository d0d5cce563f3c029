"""API keys kept in the ledger database, so every API worker sees the same keys.

Reading the key for every request was a database round trip and a thread hop per request;
``cached`` gives the request guard a view that trusts a key it found for a few seconds.
Revoking through this store forgets the key at once; a revocation made by another process
(``routecast keys revoke``) takes effect within ``cache_seconds``. Unknown keys are never
cached, so a key created elsewhere works on its first request.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from serving.auth import StoredKey, new_key
from serving.ledger.tables import api_keys

#: Cached keys kept at most (a flood of distinct valid keys cannot grow the cache past this).
_MAX_CACHED = 10_000


class SqlKeyStore:
    def __init__(self, engine: Engine, *, cache_seconds: float = 0.0) -> None:
        self.engine = engine
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[StoredKey, float]] = {}
        self._lock = threading.Lock()

    def _hit(self, key_id: str) -> StoredKey | None:
        hit = self._cache.get(key_id)
        if hit is None or time.monotonic() - hit[1] >= self.cache_seconds:
            return None
        return hit[0]

    def fresh(self, key_id: str) -> bool:
        """Whether ``cached().get(key_id)`` answers without reading the database."""
        return self._hit(key_id) is not None

    def cached(self) -> _CachedKeys:
        """The store as the request guard reads it (see the module docstring)."""
        return _CachedKeys(self)

    def _remember(self, key: StoredKey) -> None:
        with self._lock:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[key.key_id] = (key, time.monotonic())

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def get(self, key_id: str) -> StoredKey | None:
        """The key as stored now (never from the cache)."""
        with self.engine.connect().execution_options(ledger_readonly=True) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        return StoredKey(
            key_id=row.key_id,
            digest=row.digest,
            scopes=frozenset(s for s in row.scopes.split(",") if s),
            name=row.name,
            revoked=bool(row.revoked),
        )

    def add(self, key: StoredKey) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    key_id=key.key_id,
                    digest=key.digest,
                    scopes=",".join(sorted(key.scopes)),
                    name=key.name,
                    revoked=key.revoked,
                    created_at=datetime.now(UTC),
                )
            )

    def create(self, scopes: set[str] | frozenset[str], name: str = "") -> str:
        """Create a key and return the raw value (shown once; only its digest is kept)."""
        raw, stored = new_key(scopes, name)
        self.add(stored)
        return raw

    def revoke(self, key_id: str) -> bool:
        self._forget(key_id)
        with self.engine.begin() as conn:
            res = conn.execute(
                update(api_keys).where(api_keys.c.key_id == key_id).values(revoked=True)
            )
        self._forget(key_id)  # also after: a request may have cached it meanwhile
        return bool(res.rowcount)


class _CachedKeys:
    """``KeyStore.get`` through ``SqlKeyStore``'s cache; a miss reads and caches the key."""

    def __init__(self, store: SqlKeyStore) -> None:
        self.store = store

    def get(self, key_id: str) -> StoredKey | None:
        hit = self.store._hit(key_id)
        if hit is not None:
            return hit
        key = self.store.get(key_id)
        if key is not None and not key.revoked and self.store.cache_seconds > 0:
            self.store._remember(key)
        return key

    def add(self, key: StoredKey) -> None:
        self.store.add(key)
