"""The request guard's key cache: a found key is trusted for ``cache_seconds``, a revocation
through the same store is immediate, one from another process waits out the cache, unknown
keys are never cached, and the plain ``get`` always reads the store."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from serving.auth import authenticate
from serving.key_store import SqlKeyStore


def _id(raw: str) -> str:
    return raw.split("_")[1]


def test_cached_key_is_served_without_a_read_until_it_expires(engine: Engine) -> None:
    here = SqlKeyStore(engine, cache_seconds=0.3)
    elsewhere = SqlKeyStore(engine)  # another process: `routecast keys revoke`
    raw = here.create({"route"}, "t")
    assert not here.fresh(_id(raw))
    assert authenticate(here.cached(), raw) is not None
    assert here.fresh(_id(raw))

    assert elsewhere.revoke(_id(raw))
    assert authenticate(here.cached(), raw) is not None  # trusted for up to cache_seconds
    assert here.get(_id(raw)).revoked  # type: ignore[union-attr]  # the plain read sees it
    time.sleep(0.35)
    assert not here.fresh(_id(raw))
    assert authenticate(here.cached(), raw) is None  # revoked keys are not cached
    assert not here.fresh(_id(raw))


def test_revoking_through_the_serving_store_is_immediate(engine: Engine) -> None:
    store = SqlKeyStore(engine, cache_seconds=60)
    raw = store.create({"orders"}, "t")
    assert authenticate(store.cached(), raw) is not None
    assert store.revoke(_id(raw))
    assert not store.fresh(_id(raw))
    assert authenticate(store.cached(), raw) is None


def test_unknown_and_wrong_keys_are_not_cached(engine: Engine) -> None:
    store = SqlKeyStore(engine, cache_seconds=60)
    raw = store.create({"route"}, "t")
    wrong = raw[:-4] + "AAAA"
    assert authenticate(store.cached(), wrong) is None  # the id exists, the secret does not
    assert authenticate(store.cached(), "rc_0000deadbeef_x") is None
    assert not store.fresh("0000deadbeef")
    # a cached key still checks the secret of every request
    assert authenticate(store.cached(), raw) is not None
    assert authenticate(store.cached(), wrong) is None


def test_without_a_cache_every_request_reads(engine: Engine) -> None:
    store = SqlKeyStore(engine)
    raw = store.create({"route"}, "t")
    assert authenticate(store.cached(), raw) is not None
    assert not store.fresh(_id(raw))
