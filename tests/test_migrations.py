"""The migrations build exactly the schema the models describe, on this run's database tier, and
the queries every offline task runs use the indexes made for them."""

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
from openpan.services import offline


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


def test_counting_the_tasks_that_hold_a_slot_reads_only_those(tmp_path: Path) -> None:
    """Creating a task and ending one count the active tasks: an index search, not a scan of
    every task ever made (SQLite's plan; finished tasks are never deleted)."""

    async def plan() -> str:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'openpan.db'}")
        await migrate.upgrade(db.engine)
        sql = offline._ACTIVE_BY_USER.compile(dialect=sqlite.dialect())
        async with db.rows() as connection:
            rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
            found = " ".join(str(row[-1]) for row in rows)
        await db.dispose()
        return found

    found = asyncio.run(plan())
    assert "ix_offline_tasks_active (active=?)" in found, found
