"""The engine factory: one place that knows how to open SQLite and PostgreSQL.

SQLite runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE`` so the one writer takes its lock up front (no deadlock
between two readers upgrading to writers); a busy timeout makes the others wait.
Keep transactions short. PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import orjson
import sqlalchemy
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from leadgate.store.records import IdentityConflict

T = TypeVar("T")

DEFAULT_DATABASE_URL = "sqlite:///./leadgate.db"
DATABASE_URL_ENV = "LEADGATE_DATABASE_URL"
SQLITE_BUSY_TIMEOUT_MS = 10_000
READONLY = "leadgate_readonly"  # execution option: a connection that only reads


def database_url(explicit: str | None = None) -> str:
    """The URL to use: the argument, else ``LEADGATE_DATABASE_URL``, else ``./leadgate.db``."""
    if explicit:
        return explicit
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def normalise_url(url: str | URL) -> URL:
    """``postgres://`` and ``postgresql://`` mean psycopg 3; other URLs are kept as given."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def create_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (see ``database_url``), set up for leadgate's access pattern."""
    parsed = normalise_url(database_url(None) if url is None else url)
    kwargs.setdefault("json_serializer", _json_text)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    return sqlalchemy.create_engine(parsed, pool_pre_ping=True, **kwargs)


def _json_text(value: Any) -> str:
    """JSON columns through orjson (several times faster than json); the standard
    library for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:
        return json.dumps(value, default=str, allow_nan=False)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    engine = sqlalchemy.create_engine(url, **kwargs)
    in_memory = url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, not the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Erased leads leave no personal data in freed pages (not every build's default).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A reader (execution option ``readonly``) takes no lock: WAL lets it read
        # beside the writer. Everyone else takes the write lock at once.
        read = connection.get_execution_options().get(READONLY)
        connection.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


RETRIES = 8


def transact(engine: Engine, work: Callable[[Connection], T], attempts: int = RETRIES) -> T:
    """Run ``work`` in one transaction, committed on return; retried from the start
    when it lost a race with another writer (a deadlock, a serialisation failure,
    an identity claimed or a lead folded meanwhile). ``work`` must be safe to
    repeat, as ingest is: it reads what is stored afresh on each attempt."""
    for attempt in range(1, attempts + 1):
        try:
            with writer_lock(engine), engine.begin() as conn:
                return work(conn)
        except (IdentityConflict, IntegrityError, OperationalError) as exc:
            if attempt == attempts or not _transient(exc):
                raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # back off, out of step
    raise AssertionError("unreachable")  # pragma: no cover


class FairLock:
    """A lock taken in the order it was asked for: under load a plain lock lets
    some threads in again and again while one waits for seconds."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._held = False

    def __enter__(self) -> FairLock:
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            while self._held or self._queue[0] is not ticket:
                self._cond.wait()
            self._queue.popleft()
            self._held = True
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


_WRITER_LOCKS: weakref.WeakKeyDictionary[Engine, FairLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def writer_lock(engine: Engine) -> AbstractContextManager[object]:
    """SQLite has one writer: threads of one process take turns here rather than in
    SQLite's busy handler, which sleeps in steps of up to 100 ms and serves them late
    and out of order; the lock serves them first come, first served. Other processes
    still wait in the busy handler. PostgreSQL needs no such lock (row locks)."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(engine)
        if lock is None:
            lock = _WRITER_LOCKS[engine] = FairLock()
    return lock


def _transient(exc: Exception) -> bool:
    if isinstance(exc, IdentityConflict | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "sqlstate", None)
        if code in ("40001", "40P01"):  # serialization failure, deadlock
            return True
        return "database is locked" in str(exc.orig)
    return False
