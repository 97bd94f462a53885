"""``Database`` on the embedded SQLite file: sessions and connections come back to the pool the
moment their block ends, with no trip round the event loop in between, so requests begun
together do not each take a connection of their own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import OperationalError

from openpan.db import migrate
from openpan.db.engine import Database
from openpan.db.models import User, from_row, table_of
from openpan.services import users
from openpan.settings import normalise_database_url


def _database(tmp_path: Path) -> tuple[Database, list[Any]]:
    db = Database(normalise_database_url(f"sqlite:///{tmp_path / 'openpan.db'}"))
    made: list[Any] = []
    event.listen(db.engine.sync_engine.pool, "connect", lambda connection, _: made.append(1))
    return db, made


@pytest.mark.parametrize(("kind", "connections"), [("read", 1), ("rows", 0), ("write", 1)])
def test_blocks_begun_together_share_one_connection(
    tmp_path: Path, kind: str, connections: int
) -> None:
    """``rows`` takes none of the pool's: it reads on a plain ``sqlite3`` connection."""
    db, made = _database(tmp_path)

    async def one() -> None:
        async with getattr(db, kind)() as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(100)))
        await db.dispose()

    asyncio.run(main())
    assert len(made) == connections


def test_a_failed_write_is_rolled_back_and_its_connection_reused(tmp_path: Path) -> None:
    db, made = _database(tmp_path)

    async def main() -> list[Any]:
        async with db.write() as session:
            await session.execute(text("CREATE TABLE t (v INTEGER)"))
        with pytest.raises(OperationalError):
            async with db.write() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                await session.execute(text("INSERT INTO nowhere VALUES (1)"))
        async with db.rows() as connection:
            rows = (await connection.execute(text("SELECT v FROM t"))).all()
        await db.dispose()
        return list(rows)

    assert asyncio.run(main()) == []
    assert len(made) == 1


def test_a_row_made_an_object_reads_and_changes_like_one(tmp_path: Path) -> None:
    """``from_row`` skips the constructor: the object must still read every column, take
    changes, and belong to no session."""
    db, _ = _database(tmp_path)

    async def main() -> Any:
        await migrate.upgrade(db.engine)
        await users.create_user(db, "ada")
        async with db.rows() as connection:
            row = (await connection.execute(select(table_of(User)))).one()
        await db.dispose()
        return row

    row = asyncio.run(main())
    user = from_row(User, row)
    assert (user.id, user.name, user.vip) == (row.id, "ada", row.vip)
    assert inspect(user).transient
    user.vip = not row.vip
    assert user.vip is (not row.vip)
