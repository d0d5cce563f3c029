"""Engines for the ledger: SQLite (embedded default) and PostgreSQL (shared, many workers).

SQLite's Python driver starts transactions lazily and only for DML, so two writers can both
read "10 available" before either writes. The documented SQLAlchemy recipe hands BEGIN to us;
we emit ``BEGIN IMMEDIATE`` so a write transaction takes the database write lock before its
first read. Read-only work passes ``execution_options(ledger_readonly=True)`` and gets a
deferred BEGIN, which in WAL mode never blocks writers.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, StatementError
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: How long a SQLite writer waits for the lock before giving up (``LedgerBusy``).
SQLITE_BUSY_TIMEOUT_S = 30.0

_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, _WriterLock] = weakref.WeakKeyDictionary()
_WRITER_LOCKS_GUARD = threading.Lock()
_MIGRATING = threading.Lock()


def dumps_json(value: Any) -> str:
    """JSON columns' serializer: pydantic-core's (Rust) instead of ``json.dumps``, about four
    times faster on a decision answer, which a placement stores three times (the order's
    plan, the idempotent response, the audit row). Same JSON values; NaN and infinities are
    written as ``json.dumps`` writes them."""
    return to_json(value, inf_nan_mode="constants").decode()


def make_engine(
    url: str, *, pool_size: int = 5, max_overflow: int = 10, echo: bool = False
) -> Engine:
    """Create an engine with the ledger's transaction semantics for SQLite or PostgreSQL.

    ``postgresql://`` URLs are switched to the psycopg 3 driver.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, pool_size=pool_size, max_overflow=max_overflow, echo=echo)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=max_overflow,
            echo=echo,
            json_serializer=dumps_json,
        )
        event.listen(engine, "checkout", _check_idle_session)
        return engine
    raise ValueError(f"unsupported ledger database {backend!r}; use sqlite or postgresql")


@contextmanager
def driver_cursor(conn: Connection) -> Iterator[Any]:
    """The driver's own cursor on ``conn``, for the reads every decision makes (SQLAlchemy's
    result rows cost more than those queries); driver errors leave it as ``driver_failure``
    makes them, so they read like every other database failure."""
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        yield cur
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_failure(conn, exc) from exc
    finally:
        cur.close()


def driver_failure(
    conn: Connection, exc: Any, statement: str | None = None, params: Any = None
) -> StatementError:
    """A driver error raised outside SQLAlchemy, as SQLAlchemy would raise it: its
    ``OperationalError`` and kin (what the service answers 503 with ``Retry-After``, not 500),
    and a session the server ended invalidated so the pool never hands it out again."""
    gone = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    if gone:
        conn.invalidate(exc)
    wrapped: StatementError = DBAPIError.instance(
        statement,
        params,
        exc,
        conn.dialect.loaded_dbapi.Error,
        connection_invalidated=gone,
        dialect=conn.dialect,
    )
    return wrapped


def _check_idle_session(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Hand out a pooled PostgreSQL session only if it still looks open, without the round
    trip of a ping (``pool_pre_ping`` cost every transaction one, a quarter of a placement's):
    an idle session has nothing to say, so a readable socket means the server closed it or
    sent its termination notice (a restart). ``DisconnectionError`` makes the pool drop the
    session and connect afresh; a server that dies after this check fails the transaction,
    as it would after a ping."""
    if dbapi_connection.closed:
        raise DisconnectionError("the pooled session is closed")
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as exc:
        raise DisconnectionError("the pooled session's socket is gone") from exc
    if readable:
        raise DisconnectionError("the server closed the pooled session")


def _sqlite_engine(url: str, *, pool_size: int, max_overflow: int, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database in (None, "", ":memory:"):
        raise ValueError("the ledger needs a SQLite file: in-memory databases are per connection")
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=max_overflow,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        echo=echo,
        json_serializer=dumps_json,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Disable the driver's own BEGIN handling; ``_on_begin`` emits ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        readonly = conn.get_execution_options().get("ledger_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


class _WriterLock:
    """One writer at a time on a SQLite file: threads of this process queue on a lock, and
    processes (uvicorn workers, storm clients) on an ``flock`` of a file beside the database,
    taken once per outermost write. Both wake the next writer the moment the last one
    commits; without the file lock, two processes met at SQLite's own lock, whose busy
    handler sleeps up to 100 ms between tries (two workers placing orders: p99 in seconds).
    Where the file cannot be opened (a read-only folder) only threads queue."""

    def __init__(self, path: Path | None) -> None:
        self._threads = threading.RLock()
        self._path = path
        self._fd: int | None = None
        self._depth = 0

    def _file(self) -> int | None:
        if self._fd is None and self._path is not None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                self._path = None
        return self._fd

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0:
            try:
                fd = self._file()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def writer_lock(engine: Engine) -> AbstractContextManager[Any]:
    """What a write transaction holds: for a SQLite engine its ``_WriterLock`` (one per
    engine), nothing else. PostgreSQL locks rows, so concurrent writers need no lock."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(engine)
        if lock is None:
            database = engine.url.database
            path = Path(f"{database}.writer-lock") if database else None
            lock = _WRITER_LOCKS[engine] = _WriterLock(path)
    return lock


_REVISION = re.compile(r"^revision(?::[^=]*)?=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION = re.compile(r"^down_revision(?::[^=]*)?=\s*(?:[\"']([^\"']+)[\"']|None)", re.M)


def script_heads() -> set[str]:
    """The migration scripts' head revisions, read from the files without importing Alembic
    (a script whose revisions are not plain strings makes the answer empty: ask Alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = script.read_text(encoding="utf-8")
        rev = _REVISION.search(source)
        if rev is None:
            continue  # not a migration (the package's __init__)
        down = _DOWN_REVISION.search(source)
        if down is None:
            return set()
        revisions.add(rev.group(1))
        if down.group(1):
            parents.add(down.group(1))
    return revisions - parents


def at_head(engine: Engine) -> bool:
    """Whether the database already carries exactly the scripts' head revision(s)."""
    heads = script_heads()
    if not heads:
        return False
    try:
        with engine.connect() as conn:
            stamped = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except DBAPIError:  # no alembic_version table yet
        return False
    return stamped == heads


def alembic_config(engine: Engine | None = None) -> Config:
    """Alembic config pointing at ``serving/migrations``; no ini file needed."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        # configparser interpolates "%": escape URL-encoded passwords and options.
        url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
        cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def create_schema(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations on ``engine`` so SQLite and PostgreSQL get the same schema.

    A database already at the head is left alone without importing Alembic (seconds of every
    server start)."""
    if revision == "head" and at_head(engine):
        return
    from alembic import command

    cfg = alembic_config(engine)
    # Alembic runs env.py against a module-global context: two threads migrating at once
    # (two databases, one process) would run each other's steps on the wrong connection.
    with _MIGRATING, engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
        connection.commit()
