"""``openpan.db.direct``: the hot statements run straight on ``sqlite3`` give what SQLAlchemy
gives for them (values, types, rows by name and by column), write in the caller's transaction,
and leave to SQLAlchemy what they cannot run themselves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pgdb
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError, PendingRollbackError

from openpan.clock import utcnow
from openpan.db import direct, migrate
from openpan.db.direct import DirectReader
from openpan.db.engine import Database
from openpan.db.models import Job, Meta, OfflineTask, User, from_row, table_of
from openpan.db.session import hot
from openpan.db.statuses import OfflineStatus
from openpan.jobs import runner
from openpan.services import blobs, tokens, users
from openpan.services.offline import statements
from openpan.settings import normalise_database_url

pytestmark = pytest.mark.skipif(pgdb.postgres_tier(), reason="the embedded database's path")

T = TypeVar("T")


def _run(tmp_path: Path, body: Callable[[Database], Awaitable[T]]) -> T:
    """``body`` against a freshly migrated embedded database (with one user)."""

    async def main() -> T:
        db = Database(normalise_database_url(f"sqlite:///{tmp_path / 'openpan.db'}"))
        await migrate.upgrade(db.engine)
        await users.create_user(db, "ada")
        try:
            return await body(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


async def _add_task(db: Database, **values: Any) -> int:
    async with db.write() as session:
        user = (await session.execute(select(User))).scalars().one()
        now = utcnow()
        task = OfflineTask(
            user_id=user.id,
            space="disk",
            url="http://example.com/a.bin",
            target_parent_id=0,
            created_at=now,
            updated_at=now,
            **values,
        )
        session.add(task)
        await session.flush()
        return task.id


async def _through_sqlalchemy(db: Database, statement: Any, parameters: dict[str, Any]) -> Any:
    async with db.engine.connect() as connection:
        return (await connection.execute(statement, parameters)).all()


def test_rows_are_what_sqlalchemy_reads(tmp_path: Path) -> None:
    """Every column of a task and its user, joined (two ``id`` columns), with datetimes,
    booleans and NULLs: the same values and types, by position, by name and by column."""

    async def body(db: Database) -> tuple[list[Any], list[Any]]:
        task_id = await _add_task(db, active=True, bytes_total=None, validator='"abc"')
        async with db.rows() as reader:
            assert isinstance(reader, DirectReader)
            ours = (await reader.execute(statements.TASK_AND_USER, {"id": task_id})).all()
        theirs = await _through_sqlalchemy(db, statements.TASK_AND_USER, {"id": task_id})
        return ours, theirs

    ours, theirs = _run(tmp_path, body)
    assert len(ours) == len(theirs) == 1
    assert tuple(ours[0]) == tuple(theirs[0])
    assert [type(value) for value in ours[0]] == [type(value) for value in theirs[0]]
    row = ours[0]
    assert isinstance(row.created_at, datetime) and row.active is True and row.bytes_total is None
    users_table = table_of(User)
    assert row._mapping[users_table.c.id] == theirs[0]._mapping[users_table.c.id]
    assert from_row(User, row).name == "ada"
    assert from_row(OfflineTask, row).validator == '"abc"'
    with pytest.raises(AttributeError):
        _ = row.no_such_column


def test_a_token_lookup_and_a_missing_row(tmp_path: Path) -> None:
    async def body(db: Database) -> tuple[Any, Any]:
        async with db.rows() as reader:
            missing = (await reader.execute(tokens._TOKEN_AND_USER, {"jti": "nope"})).first()
            found = await blobs.find(reader, "0" * 32, 1)
        return missing, found

    assert _run(tmp_path, body) == (None, None)


def test_a_missing_parameter_is_an_error_not_a_null(tmp_path: Path) -> None:
    async def body(db: Database) -> None:
        async with db.rows() as reader:
            await reader.execute(statements.TASK, {})

    with pytest.raises(KeyError, match="'id'"):
        _run(tmp_path, body)


def test_a_list_parameter_goes_through_sqlalchemy(tmp_path: Path) -> None:
    """``IN`` over a list given at run time is expanded by SQLAlchemy: such a statement is
    handed to it, with the same answer."""

    async def body(db: Database) -> tuple[Any, Any]:
        async with db.write() as session:
            await runner.enqueue(session, "a.kind", {"n": 1}, delay=5)
        async with db.rows() as reader:
            soonest = await reader.scalar(runner._SOONEST, {"kinds": ["a.kind", "b.kind"]})
            none = await reader.scalar(runner._SOONEST, {"kinds": ["c.kind"]})
        return soonest, none

    soonest, none = _run(tmp_path, body)
    assert isinstance(soonest, datetime) and soonest > utcnow()
    assert none is None
    assert direct.compiled_for(runner._SOONEST, _sqlite_dialect(), {"kinds": []}) is None


def _sqlite_dialect() -> Any:
    from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

    return SQLiteDialect_aiosqlite()


def test_writes_join_the_callers_transaction(tmp_path: Path) -> None:
    """A statement run directly inside ``Database.write`` commits and rolls back with it, and
    datetimes it writes read back as SQLAlchemy wrote them."""

    async def body(db: Database) -> tuple[list[Any], int]:
        moment = datetime(2026, 11, 22, 23, 59, 58, 123456)
        with pytest.raises(RuntimeError):
            async with db.write() as session:
                await runner.enqueue(session, "rolled.back", {})
                raise RuntimeError("roll back")
        task_id = await _add_task(db)
        async with db.write() as session:
            await runner.enqueue(session, "kept", {"n": 1})
            job_id = (await session.execute(select(Job.id))).scalar_one()
            await runner._settle(session, job_id, "done", 60, "why")
            changed = await statements.update_unfinished(session, task_id, {"updated_at": moment})
        async with db.read() as session:
            jobs = (await session.execute(select(Job))).scalars().all()
            updated = (await session.execute(select(OfflineTask.updated_at))).scalar_one()
        assert updated == moment
        return list(jobs), changed

    jobs, changed = _run(tmp_path, body)
    assert [(job.kind, job.status, job.last_error) for job in jobs] == [("kept", "done", "why")]
    assert json.loads(jobs[0].payload) == {"n": 1}
    assert jobs[0].run_after - jobs[0].updated_at == timedelta(seconds=60)
    assert changed == 1


def test_an_update_counts_the_rows_it_changed(tmp_path: Path) -> None:
    async def body(db: Database) -> list[int]:
        task_id = await _add_task(db, status=OfflineStatus.SUCCEEDED)
        async with db.write() as session:
            ended = await statements.update_unfinished(session, task_id, {"process": 5.0})
            missing = await statements.update_unfinished(session, 999, {"process": 5.0})
        other = await _add_task(db)
        async with db.write() as session:
            running = await statements.update_unfinished(session, other, {"process": 5.0})
        return [ended, missing, running]

    assert _run(tmp_path, body) == [0, 0, 1]


def test_column_defaults_are_filled_in_or_left_to_sqlalchemy(tmp_path: Path) -> None:
    """An INSERT that leaves out columns: a constant default is sent as SQLAlchemy would; a
    default computed at run time sends the statement to SQLAlchemy."""
    metadata = MetaData()
    calls: list[int] = []

    def counted() -> int:
        calls.append(1)
        return 7

    table = Table(
        "direct_defaults",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(20)),
        Column("fixed", Integer, default=3),
        Column("computed", Integer, default=counted),
    )
    dialect = _sqlite_dialect()
    assert direct.compiled_for(insert(table), dialect, {"name": "a", "computed": 1}) is not None
    assert direct.compiled_for(insert(table), dialect, {"name": "a"}) is None

    async def body(db: Database) -> list[Any]:
        async with db.write() as session:
            await session.execute(
                text(
                    "CREATE TABLE direct_defaults (id INTEGER PRIMARY KEY, name VARCHAR(20), "
                    "fixed INTEGER, computed INTEGER)"
                )
            )
        statement = hot(insert(table))
        async with db.write() as session:
            await session.execute(statement, {"name": "a", "computed": 1})
            await session.execute(statement, {"name": "b"})
        async with db.read() as session:
            return list((await session.execute(select(table).order_by(table.c.id))).all())

    rows = _run(tmp_path, body)
    assert [tuple(row) for row in rows] == [(1, "a", 3, 1), (2, "b", 3, 7)]
    assert calls == [1]


def test_an_insert_returning_its_key_reads_it_without_returning(tmp_path: Path) -> None:
    """``INSERT ... RETURNING id`` is sent without RETURNING (one step less) and its key read
    from ``lastrowid``: the new row's key, or no row when ``ON CONFLICT DO NOTHING`` skipped it
    (``lastrowid`` then still names the row inserted before)."""
    insert_new = blobs._INSERT_NEW["sqlite"]
    compiled = direct.compiled_for(insert_new, _sqlite_dialect(), {"md5": "", "size": 0})
    assert compiled is not None and compiled.returns_rowid
    assert "RETURNING" not in compiled.sql

    async def body(db: Database) -> list[Any]:
        values = {"md5": "a" * 32, "size": 1, "key": "k1", "refcount": 1, "created_at": utcnow()}
        async with db.write() as session:
            first = await session.scalar(insert_new, values)
            second = await session.scalar(insert_new, {**values, "md5": "b" * 32})
            again = (await session.execute(insert_new, values)).all()
        async with db.read() as session:
            ids = (await session.execute(text("SELECT id FROM blobs ORDER BY id"))).scalars()
            return [first, second, again, list(ids)]

    first, second, again, ids = _run(tmp_path, body)
    assert [first, second] == ids and first != second
    assert again == []


def test_pending_changes_are_flushed_first_as_the_session_would(tmp_path: Path) -> None:
    async def body(db: Database) -> tuple[int, int]:
        count = hot(select(func.count()).select_from(table_of(Meta)))
        async with db.write() as session:
            before = await session.scalar(count)
            session.add(Meta(key="pending", value="1"))
            after = await session.scalar(count)
        return before, after

    before, after = _run(tmp_path, body)
    assert after == before + 1


def test_nothing_runs_on_its_own_once_the_transaction_rolled_back(tmp_path: Path) -> None:
    """After a failed flush SQLAlchemy has rolled the transaction back: a direct statement
    must not then commit by itself on the connection (autocommit); the session refuses it."""

    async def body(db: Database) -> list[Any]:
        async with db.write() as session:
            session.add(Meta(key="taken", value="1"))
        with pytest.raises(PendingRollbackError):
            async with db.write() as session:
                session.add(Meta(key="taken", value="a second one"))
                with pytest.raises(IntegrityError):
                    await session.flush()
                await runner.enqueue(session, "after.rollback", {})
        async with db.read() as session:
            return list((await session.execute(select(Job.kind))).scalars())

    assert _run(tmp_path, body) == []


def test_a_savepoint_rolled_back_takes_its_statements_with_it(tmp_path: Path) -> None:
    async def body(db: Database) -> list[Any]:
        async with db.write() as session:
            await runner.enqueue(session, "kept", {})
            with pytest.raises(RuntimeError):
                async with session.begin_nested():
                    await runner.enqueue(session, "in.savepoint", {})
                    raise RuntimeError("roll the savepoint back")
            await runner.enqueue(session, "also.kept", {})
        async with db.read() as session:
            return list((await session.execute(select(Job.kind).order_by(Job.id))).scalars())

    assert _run(tmp_path, body) == ["kept", "also.kept"]


def test_only_hot_statements_take_the_direct_path(tmp_path: Path) -> None:
    """The session runs a ``hot`` statement on ``sqlite3`` and every other one (the same
    statement unmarked, or with execution options of the call's own) through SQLAlchemy: the
    services call ``session.execute`` alike for both."""
    count = select(func.count()).select_from(table_of(Meta))

    async def body(db: Database) -> list[str]:
        async with db.write() as session:
            results = [
                await session.execute(hot(count)),
                await session.execute(count),
                await session.execute(hot(count), execution_options={"populate_existing": True}),
            ]
        async with db.read() as session:
            results.append(await session.execute(hot(count)))  # no write transaction
        return [type(result).__module__.split(".")[0] for result in results]

    assert _run(tmp_path, body) == ["openpan", "sqlalchemy", "sqlalchemy", "sqlalchemy"]
