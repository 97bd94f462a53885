"""Engine and sessions. One ``Database`` per process, made at start-up from the database URL.

SQLite allows one writer at a time. Rather than let concurrent requests collide on its lock,
write transactions in this process queue on an asyncio lock and start with ``BEGIN IMMEDIATE``
(so a transaction never has to upgrade a read lock, which SQLite may refuse at once). Reads run
in parallel under WAL. PostgreSQL needs neither: its transactions and row locks do the work.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import Table, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import Executable

from openpan.db.direct import DirectReader
from openpan.db.inline_sqlite import InlineConnection, inline_creator
from openpan.db.session import SQLITE_CONNECTION, Session

# The longest a write waits for another process's transaction to end (SQLite's write lock).
LOCK_WAIT = 30.0
# SQLite's own wait for a lock when statements run on the event loop: short, see ``write``.
_INLINE_BUSY = 0.02


_Closable = AsyncSession | AsyncConnection


class Reader(Protocol):
    """What ``Database.rows`` hands out: SQLAlchemy's ``AsyncConnection``, or on the embedded
    database a ``DirectReader`` (see ``openpan.db.direct``)."""

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> Any: ...

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> Any: ...


class Database:
    """The metadata database: ``read()`` for queries, ``write()`` for changes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        database = make_url(url).database
        self._inline = bool(self.is_sqlite and database and database != ":memory:")
        if self._inline:
            # Statements run on the event loop itself: see ``inline_sqlite`` for why. SQLite's
            # own wait for another process's lock would stop the loop, so it is kept short and
            # ``write`` waits for the lock instead (the one place another writer can be met).
            kwargs["async_creator"] = inline_creator(str(database), timeout=_INLINE_BUSY)
        elif self.is_sqlite:
            kwargs["connect_args"] = {"timeout": LOCK_WAIT}
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 20
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine, _INLINE_BUSY if self._inline else LOCK_WAIT)
        self._sessions = async_sessionmaker(self.engine, class_=Session, expire_on_commit=False)
        self._reader = (
            DirectReader(str(database), _INLINE_BUSY, self.engine) if self._inline else None
        )
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Session]:
        """A session for queries; nothing it does is committed. Each statement sees what was
        committed before it ran (PostgreSQL's READ COMMITTED, and the same on SQLite, where the
        session opens no transaction: a BEGIN and ROLLBACK per read cost more than the query)."""
        async with self._closing(self._sessions()) as session:
            if self.is_sqlite:
                await session.connection(execution_options={"sqlite_autocommit": True})
            yield session

    @asynccontextmanager
    async def rows(self) -> AsyncIterator[Reader]:
        """A connection for Core queries, without an ORM session: for the few queries that
        every request or download runs. Reads like ``read()``. A session costs about 0.1 ms to
        open and the ORM some 0.15-0.3 ms per statement over Core's 0.05 ms, which made up most
        of what an authenticated request or a small download cost the server. On the embedded
        database the statements skip SQLAlchemy's connection too (``openpan.db.direct``)."""
        if self._reader is not None:
            yield self._reader
            return
        async with self._closing(self.engine.connect()) as connection:
            if self.is_sqlite:
                await connection.execution_options(sqlite_autocommit=True)
            yield connection

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        if self.is_sqlite:
            async with self._write_lock, self._closing(self._sessions()) as session:
                connection = await _begin_immediate(session)
                if self._inline:
                    # For the hot statements (``openpan.db.session``): the transaction's own
                    # ``sqlite3`` connection.
                    session.info[SQLITE_CONNECTION] = _inline_connection(connection).sqlite
                try:
                    yield session
                    await session.commit()
                except BaseException:
                    await session.rollback()
                    raise
                finally:
                    session.info.pop(SQLITE_CONNECTION, None)
        else:
            async with self._sessions() as session, session.begin():
                yield session

    @asynccontextmanager
    async def _closing(self, opened: _Closable) -> AsyncIterator[Any]:
        """``opened`` (a session, or a connection not yet started), closed when the block ends.

        SQLAlchemy's own ``async with`` closes in a task of its own, shielded from cancellation
        (on PostgreSQL a close is network I/O a cancellation could cut short). That costs a
        trip round the event loop per session, in which other requests start and check out
        connections of their own: 100 reads begun together took 60 connections. On SQLite run
        inline a close never suspends, so nothing can cut it short and it is awaited here."""
        if not self._inline:
            async with opened as resource:
                yield resource
            return
        resource = await opened.start() if isinstance(opened, AsyncConnection) else opened
        try:
            yield resource
        finally:
            await resource.close()

    async def ping(self) -> None:
        """Run a trivial query: raises if the database does not answer."""
        async with self.read() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._reader is not None:
            self._reader.close()
        await self.engine.dispose()


def _inline_connection(connection: AsyncConnection) -> InlineConnection:
    """The ``InlineConnection`` under a SQLAlchemy connection to the embedded database."""
    assert connection.sync_connection is not None
    driver = connection.sync_connection.connection.driver_connection
    assert isinstance(driver, InlineConnection)
    return driver


async def _begin_immediate(session: AsyncSession) -> AsyncConnection:
    """Start the session's write transaction, waiting (with the event loop free) while another
    process holds SQLite's write lock, for at most ``LOCK_WAIT`` seconds. Returns its
    connection."""
    deadline = time.monotonic() + LOCK_WAIT
    delay = 0.005
    while True:
        try:
            return await session.connection(execution_options={"sqlite_immediate": True})
        # SQLAlchemy's error, or sqlite3's own from the BEGIN sent straight (``_on_begin``).
        except (OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        await session.rollback()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


def _configure_sqlite(engine: AsyncEngine, busy: float) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("sqlite_autocommit"):
            return
        begin = "BEGIN IMMEDIATE" if options.get("sqlite_immediate") else "BEGIN"
        if isinstance(conn.connection.driver_connection, InlineConnection):
            # Straight to sqlite3: through SQLAlchemy, the BEGIN cost more than the
            # statements of a short transaction.
            conn.connection.driver_connection.sqlite.execute(begin)
        else:
            conn.exec_driver_sql(begin)


def dialect_name(session: AsyncSession) -> str:
    """The name of the session's database dialect: ``sqlite`` or ``postgresql``."""
    return session.sync_session.get_bind().dialect.name


def one_writer(session: AsyncSession) -> bool:
    """Whether the session's database runs one write transaction at a time (SQLite), so that
    what guards against a concurrent writer (a row lock, a savepoint around an insert that may
    race) has nothing to guard against."""
    return dialect_name(session) == "sqlite"


def insert_unless_taken(table: Table) -> dict[str, Any]:
    """``INSERT ... ON CONFLICT DO NOTHING``, one per database openpan runs on (keyed by the
    dialect's name): an insert that a unique constraint refuses inserts nothing and returns no
    row, instead of raising. Cheaper than looking first, and on PostgreSQL than the savepoint
    an insert that may fail needs."""
    return {
        "sqlite": sqlite.insert(table).on_conflict_do_nothing(),
        "postgresql": postgresql.insert(table).on_conflict_do_nothing(),
    }


async def serialize(session: AsyncSession, name: str) -> None:
    """Make the caller's write transaction wait for any other one that took ``name`` and has
    not ended, on any process: for rules that count rows and then add some (slot limits).

    PostgreSQL: a transaction advisory lock, released at commit or rollback. SQLite needs
    nothing: its write transactions run one at a time already.
    """
    if dialect_name(session) == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
