"""SQLite for the async engine without a thread per connection.

SQLAlchemy's asyncio support for SQLite goes through aiosqlite, which runs every call (cursor,
execute, fetch, close, commit) on a thread of its own and hands the result back to the event
loop: four or five thread round trips per statement. Measured here that is about 0.8 ms of CPU
for a one-row query, against some 20 µs for the statement itself, and it was most of what an
offline task or an authenticated request cost the server.

This module gives SQLAlchemy's aiosqlite dialect a connection with aiosqlite's interface whose
coroutines run the ``sqlite3`` call at once, on the calling thread, and never wait. That is
what a local, single-writer database allows: a statement reads the page cache (WAL mode;
``synchronous=NORMAL`` syncs only at checkpoints) and returns in microseconds, and writers of
this process queue on ``Database``'s lock before they start, so none waits for SQLite's own
lock. Only another process writing at the same moment (an ``openpan user`` command) can make a
statement wait, for as long as that process's transaction lasts.

Pass ``inline_creator(path)`` as ``async_creator`` to ``create_async_engine``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Literal


class _Immediate:
    """Stands in for aiosqlite's request queue, which SQLAlchemy uses directly to set
    ``isolation_level``: the function runs now and its future is resolved."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)


class InlineCursor:
    """An aiosqlite-style cursor whose coroutines complete without suspending."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    def __aiter__(self) -> InlineCursor:
        return self

    async def __anext__(self) -> Any:
        row = self._cursor.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Any:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Any]) -> Any:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def nextset(self) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """An aiosqlite-style connection over a ``sqlite3`` one, without a worker thread."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = connection
        self._tx = _Immediate()

    @property
    def _connection(self) -> sqlite3.Connection | None:
        # SQLAlchemy checks this to know whether the connection is still open.
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("Connection closed")
        return self._conn

    @property
    def sqlite(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection itself (``openpan.db.direct`` runs statements on it)."""
        return self._open()

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._open().cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> Any:
        return InlineCursor(self._open().execute(sql, parameters))

    async def commit(self) -> None:
        self._open().commit()

    async def rollback(self) -> None:
        self._open().rollback()

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stop(self) -> None:
        """Close now (SQLAlchemy's terminate)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._open().create_function(*args, **kwargs)

    @property
    def isolation_level(self) -> str | None:
        return self._open().isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Literal["DEFERRED", "EXCLUSIVE", "IMMEDIATE"] | None) -> None:
        self._open().isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self._open().in_transaction


def inline_creator(path: str, timeout: float) -> Callable[[], Coroutine[Any, Any, Any]]:
    """An ``async_creator`` for ``create_async_engine``: connections to the SQLite file at
    ``path``, waiting at most ``timeout`` seconds for another process's write lock."""

    async def connect() -> InlineConnection:
        # check_same_thread off: the pool may close a connection from the thread that drops it;
        # each connection is only ever used by one task at a time.
        connection = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
        return InlineConnection(connection)

    return connect
