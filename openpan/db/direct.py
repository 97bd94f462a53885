"""The hot Core statements run straight on ``sqlite3`` on the embedded database.

Through SQLAlchemy, one indexed read cost about 270 µs of CPU (a connection checked out of the
pool and reset on return, events, the async adaptation's greenlet switches, result metadata)
against 5 µs for the statement itself, and a statement inside a transaction some 60 µs against
10: an authenticated request, a progress poll and an offline task make several. Here a
statement is compiled once by SQLAlchemy, for SQLite, with SQLAlchemy's own conversions for its
parameters, column defaults and result columns (so the values are exactly what SQLAlchemy would
send and give back), and run on a plain ``sqlite3`` connection:

- reads (``Database.rows``): a ``DirectReader``, one connection per thread in autocommit, so
  each statement sees what was committed before it, as through SQLAlchemy. Statements run
  synchronously and their rows are fetched at once, so one connection serves every task of an
  event loop;
- writes (``hot`` statements of a ``Database.write`` session, ``openpan.db.session``): on that
  transaction's own connection, so they commit or roll back with it.

Everywhere else (PostgreSQL, a savepoint, a statement with a list SQLAlchemy expands at run
time, a default computed at run time) the statement goes through SQLAlchemy. The results offer
what openpan reads of SQLAlchemy's (``first``, ``one``, ``scalar``, ``all``, ``rowcount``, rows
by name and column); errors are ``sqlite3``'s own, not SQLAlchemy's wrappers, which no caller of
these statements catches.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, cast

from sqlalchemy import Insert, Integer, Table
from sqlalchemy.dialects.sqlite.dml import OnConflictDoNothing
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

log = logging.getLogger("openpan.db")

Processor = Callable[[Any], Any] | None
_MAX_CACHED = 256


class _Shape:
    """What a statement's rows look like: each column's position by name and by column."""

    __slots__ = ("index", "names")

    def __init__(self, compiled: SQLCompiler) -> None:
        self.index: dict[Any, int] = {}  # by name and by column object
        self.names: dict[str, int] = {}
        for position, entry in enumerate(compiled._result_columns):
            self.names.setdefault(entry.keyname, position)
            for key in (entry.keyname, *entry.objects):
                self.index.setdefault(key, position)


class Row(tuple[Any, ...]):
    """A result row: by position, by attribute (``row.name``) and through ``_mapping`` (by
    name or by column), like SQLAlchemy's ``Row`` for the uses openpan makes of it."""

    __slots__ = ()
    _shape: ClassVar[_Shape]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._shape.names[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> RowMapping:
        return RowMapping(self)


class RowMapping(Mapping[Any, Any]):
    """A row's values by column name or column object."""

    __slots__ = ("_row",)

    def __init__(self, row: Row) -> None:
        self._row = row

    def __getitem__(self, key: Any) -> Any:
        return self._row[self._row._shape.index[key]]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._row._shape.names)

    def __len__(self) -> int:
        return len(self._row)


class Statement:
    """One statement compiled for SQLite: its SQL, its parameters in order with their default
    values and conversions, and how to turn what ``sqlite3`` returns into its rows."""

    __slots__ = ("_binds", "_columns", "_row", "returns_rowid", "sql")

    def __init__(self, statement: Executable, dialect: Dialect, keys: Sequence[str]) -> None:
        compiled = shape = _compile(statement, dialect, keys)
        # An INSERT that returns only its integer key: sent without RETURNING, the key read
        # from ``lastrowid``. sqlite3 steps a statement once more to finish its rows, and every
        # step lets the other threads take the GIL.
        self.returns_rowid = _returns_only_rowid(statement)
        if self.returns_rowid:
            plain = statement._generate()  # type: ignore[attr-defined]
            plain._returning = ()
            compiled = _compile(plain, dialect, keys)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("expanding parameters are left to SQLAlchemy")
        if compiled.escaped_bind_names or compiled.positiontup is None:
            raise ValueError("only plain positional parameters")
        # Columns left out of an INSERT or UPDATE that have a default SQLAlchemy computes:
        # a constant is sent like a parameter's default; anything else is left to SQLAlchemy.
        defaults: dict[str, Any] = {}
        for column in (*compiled.insert_prefetch, *compiled.update_prefetch):
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not default.is_scalar:
                raise ValueError(f"column {column.key} has a default computed at run time")
            defaults[column.key] = cast(Any, default).arg
        self.sql = compiled.string
        processors = cast(dict[str, Processor], compiled._bind_processors)
        self._binds: list[tuple[str, Any, bool, Processor]] = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            if name in defaults:
                self._binds.append((name, defaults[name], False, processors.get(name)))
            else:
                self._binds.append((name, bind.value, bind.required, processors.get(name)))
        self._columns: list[Processor] = [
            entry.type._cached_result_processor(dialect, None) for entry in shape._result_columns
        ]
        self._row: type[Row] = type("Row", (Row,), {"__slots__": (), "_shape": _Shape(shape)})

    def parameters(self, given: Mapping[str, Any] | None) -> tuple[Any, ...]:
        """The values to send, in order: given or default, converted as SQLAlchemy would."""
        values = []
        for name, default, required, processor in self._binds:
            if given is not None and name in given:
                value = given[name]
            elif required:
                raise KeyError(f"a value is required for bind parameter {name!r}")
            else:
                value = default
            values.append(value if processor is None else processor(value))
        return tuple(values)

    def rows(self, raw: Sequence[tuple[Any, ...]]) -> list[Row]:
        make, columns = self._row, self._columns
        if not any(columns):
            return [make(values) for values in raw]
        return [
            make(
                value if convert is None or value is None else convert(value)
                for convert, value in zip(columns, values, strict=True)
            )
            for values in raw
        ]


class Result:
    """The rows of one statement, with the parts of SQLAlchemy's ``Result`` openpan reads."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def one(self) -> Row:
        if len(self._rows) != 1:
            raise ValueError(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def one_or_none(self) -> Row | None:
        if len(self._rows) > 1:
            raise ValueError(f"expected at most one row, got {len(self._rows)}")
        return self.first()

    def all(self) -> list[Row]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)


_compiled: dict[tuple[Executable, str, frozenset[str]], Statement | None] = {}


def compiled_for(
    statement: Executable, dialect: Dialect, parameters: Mapping[str, Any] | None
) -> Statement | None:
    """``statement`` compiled for SQLite for parameters of these names (once), or ``None`` if
    it is left to SQLAlchemy."""
    cache_key = (statement, dialect.name, frozenset(parameters or ()))
    try:
        return _compiled[cache_key]
    except KeyError:
        pass
    try:
        compiled: Statement | None = Statement(statement, dialect, sorted(cache_key[2]))
    except ValueError:
        compiled = None
    # The statements are module-level constants (and ``offline.statements.task_update``'s few): the
    # cache never grows past them. If it does, compiling each time is slow, not wrong.
    if len(_compiled) < _MAX_CACHED:
        _compiled[cache_key] = compiled
    elif len(_compiled) == _MAX_CACHED:
        log.warning("direct statements: more than %d, later ones compiled each time", _MAX_CACHED)
        _compiled[cache_key] = compiled
    return compiled


def _compile(statement: Executable, dialect: Dialect, keys: Sequence[str]) -> SQLCompiler:
    # ``column_keys``: an INSERT or UPDATE sets the columns its parameters name, as when
    # SQLAlchemy runs it.
    compiled = cast(ClauseElement, statement).compile(dialect=dialect, column_keys=list(keys))
    assert isinstance(compiled, SQLCompiler)
    return compiled


def _returns_only_rowid(statement: Executable) -> bool:
    """Whether ``statement`` is an INSERT whose RETURNING is its table's integer key alone."""
    if not isinstance(statement, Insert):
        return False
    returning = statement._returning
    key = list(statement.table.primary_key.columns) if isinstance(statement.table, Table) else []
    # One row at most (no INSERT ... SELECT, no list of rows), and no ON CONFLICT DO UPDATE,
    # whose update leaves ``lastrowid`` as it was.
    conflict = statement._post_values_clause
    return (
        len(returning) == 1
        and key == [returning[0]]
        and isinstance(key[0].type, Integer)
        and statement.select is None
        and not statement._multi_values
        and (conflict is None or isinstance(conflict, OnConflictDoNothing))
    )


def run(connection: sqlite3.Connection, compiled: Statement, parameters: Any) -> Result:
    """Run a compiled statement and fetch all its rows."""
    cursor = connection.execute(compiled.sql, compiled.parameters(parameters))
    try:
        if compiled.returns_rowid:
            # One row inserted, or none (ON CONFLICT DO NOTHING): ``lastrowid`` is only ours then.
            raw = [(cursor.lastrowid,)] if cursor.rowcount == 1 else []
            return Result(compiled.rows(raw), cursor.rowcount)
        return Result(compiled.rows(cursor.fetchall()), cursor.rowcount)
    finally:
        cursor.close()


class DirectReader:
    """``execute`` and ``scalar`` of an ``AsyncConnection``, for reads, on plain ``sqlite3``.
    A connection per thread that reads (in the server, the event loop's), kept until
    ``close``."""

    def __init__(self, path: str, busy_timeout: float, engine: AsyncEngine) -> None:
        self._path = path
        self._busy = busy_timeout
        self._engine = engine
        self._dialect = engine.dialect
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit (isolation_level None): no transaction outlives a statement.
            connection = sqlite3.connect(
                self._path, timeout=self._busy, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout={int(self._busy * 1000)}")
            with self._guard:
                self._opened.append(connection)
            self._local.connection = connection
        return connection

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        """Run a read; its rows, all fetched (``first()``, ``all()``, ``scalar()``...)."""
        compiled = compiled_for(statement, self._dialect, parameters)
        if compiled is None:
            async with self._engine.connect() as connection:
                await connection.execution_options(sqlite_autocommit=True)
                return (await connection.execute(statement, parameters)).freeze()()
        return run(self._connection(), compiled, parameters)

    async def scalar(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Any:
        """The first column of the first row, or ``None``."""
        return (await self.execute(statement, parameters)).scalar()

    def close(self) -> None:
        """Close every connection opened (each thread's)."""
        with self._guard:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()
        self._local = threading.local()
