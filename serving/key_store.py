"""API keys kept in the ledger database, so every API worker sees the same keys."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update

from serving.auth import StoredKey, new_key
from serving.ledger.tables import api_keys


class SqlKeyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key_id: str) -> StoredKey | None:
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
        with self.engine.begin() as conn:
            res = conn.execute(
                update(api_keys).where(api_keys.c.key_id == key_id).values(revoked=True)
            )
        return bool(res.rowcount)
