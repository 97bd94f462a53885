"""The migrations build exactly the schema the models describe, on this run's database tier, and
the queries every offline task and upload runs use the indexes made for them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pgdb
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.dialects import sqlite

from openpan.db import migrate
from openpan.db.engine import Database
from openpan.db.models import Base
from openpan.services import disk
from openpan.services.offline import statements


def test_the_migrations_build_the_schema_of_the_models(tmp_path: Path) -> None:
    async def differences() -> list[Any]:
        db = Database(pgdb.tier_database(tmp_path))
        await migrate.upgrade(db.engine)
        async with db.engine.connect() as connection:
            found = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata)
            )
        await db.dispose()
        return list(found)

    assert asyncio.run(differences()) == []


def _sqlite_plan(tmp_path: Path, statement: Any, **values: Any) -> str:
    """SQLite's query plan for ``statement`` (with ``values`` for its parameters) on a freshly
    migrated database."""

    async def plan() -> str:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'openpan.db'}")
        await migrate.upgrade(db.engine)
        sql = statement.compile(dialect=sqlite.dialect())
        bound = sql.construct_params(values)
        arguments = tuple(bound[name] for name in sql.positiontup or ())
        async with db.engine.connect() as connection:
            rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", arguments)
            found = " ".join(str(row[-1]) for row in rows)
        await db.dispose()
        return found

    return asyncio.run(plan())


def test_counting_the_tasks_that_hold_a_slot_reads_only_those(tmp_path: Path) -> None:
    """Creating a task and ending one count the active tasks: an index search, not a scan of
    every task ever made (SQLite's plan; finished tasks are never deleted)."""
    found = _sqlite_plan(tmp_path, statements.HELD)
    assert "COVERING INDEX ix_offline_tasks_active (active=?)" in found, found
    one_user = statements.HELD.where(statements.holding.c.user_id == 1)
    (tmp_path / "again").mkdir()
    found = _sqlite_plan(tmp_path / "again", one_user)
    assert "COVERING INDEX ix_offline_tasks_active (active=? AND user_id=?)" in found, found


def test_admitting_a_task_reads_indexes_only(tmp_path: Path) -> None:
    """Every task's end admits the next: the oldest waiting task is found through the waiting
    index and the slots held are counted from the active one, never by reading every task."""
    found = _sqlite_plan(tmp_path, statements.ADMIT_ONE, max_active=10, per_user=5)
    assert "SEARCH waiting USING INDEX ix_offline_tasks_waiting (status=? AND active=?)" in found
    assert found.count("SEARCH holding USING COVERING INDEX ix_offline_tasks_active") == 2, found
    assert "SCAN" not in found, found


def test_the_space_a_user_takes_is_summed_from_an_index(tmp_path: Path) -> None:
    """Every upload and download into the cloud disk sums the user's file sizes: from the index
    alone, not from every row of the account."""
    found = _sqlite_plan(tmp_path, disk._SPACE_USED, user_id=1)
    assert "COVERING INDEX ix_files_space_used (user_id=? AND space=? AND is_dir=?)" in found, found
