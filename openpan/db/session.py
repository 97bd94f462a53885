"""The session every service gets from ``Database.read`` and ``Database.write``.

It is SQLAlchemy's ``AsyncSession`` with one difference: a Core statement marked ``hot`` (the
few that every request, upload or offline task runs, defined once at module level) runs
straight on the write transaction's own ``sqlite3`` connection on the embedded database
(``openpan.db.direct``), about 10 µs against SQLAlchemy's 60. Services call
``session.execute`` and ``session.scalar`` for every statement alike; which path a statement
takes is this module's business, not theirs.

Left to SQLAlchemy, always: PostgreSQL, a read session, a savepoint (SQLAlchemy may not have
sent the SAVEPOINT yet: it goes with the session's next statement), a transaction that is over
(rolled back after an error: the statement would commit on its own; the session raises
instead), and any call with execution options or bind arguments of its own.
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

from openpan.db import direct

# Where ``Database.write`` leaves the plain ``sqlite3`` connection of a session's transaction.
SQLITE_CONNECTION = "openpan.sqlite3"
_HOT = "openpan_hot"

S = TypeVar("S", bound=Executable)


def hot(statement: S) -> S:
    """``statement``, marked to run on the fast path where there is one. For module-level
    Core statements only: each is compiled once per set of parameter names and kept."""
    return statement.execution_options(**{_HOT: True})


def is_hot(statement: Executable) -> bool:
    """Whether ``statement`` was marked with ``hot``."""
    return bool(statement.get_execution_options().get(_HOT))


class Session(AsyncSession):
    """``AsyncSession``, with ``hot`` statements on the embedded database's fast path."""

    async def execute(
        self,
        statement: Executable,
        params: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Run a statement in the session's transaction (SQLAlchemy's ``execute``). A ``hot``
        one's result offers what the services read of SQLAlchemy's: ``first``, ``one``,
        ``scalar``, ``all``, ``rowcount``, rows by name."""
        connection: sqlite3.Connection | None = self.info.get(SQLITE_CONNECTION)
        if (
            connection is not None
            and not kwargs
            and connection.in_transaction
            and not self.in_nested_transaction()
            and is_hot(statement)
        ):
            compiled = direct.compiled_for(statement, self.sync_session.get_bind().dialect, params)
            if compiled is not None:
                if self.autoflush and (self.new or self.dirty or self.deleted):
                    await self.flush()  # as SQLAlchemy's ``execute`` would first
                return direct.run(connection, compiled, params)
        return await super().execute(statement, params, **kwargs)

    async def scalar(
        self,
        statement: Executable,
        params: Any = None,
        **kwargs: Any,
    ) -> Any:
        """The first column of the first row, or ``None``, the way ``execute`` runs it."""
        if kwargs:
            return await super().scalar(statement, params, **kwargs)
        return (await self.execute(statement, params)).scalar()
