"""Apply the schema migrations. Called on every start; a no-op when the schema is current."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from openpan.db.engine import LOCK_WAIT

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATE_LOCK = 0x6F70656E70616E30  # pg_advisory_xact_lock key ("openpan0")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database at ``engine`` to the newest schema."""

    def _upgrade(connection: Any) -> None:
        config = alembic_config(str(engine.url.render_as_string(hide_password=False)))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Processes starting together (scale-out) migrate one at a time; the later ones
            # then find the schema current. The lock ends with the transaction.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK}
            )
            await connection.run_sync(_upgrade)
            return
        # SQLite. Once, at start-up, waiting on the event loop for another process's write lock
        # is fine (statements run on it, see ``inline_sqlite``), and a new schema needs the lock.
        usual = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        await connection.exec_driver_sql(f"PRAGMA busy_timeout={int(LOCK_WAIT * 1000)}")
        try:
            await connection.run_sync(_upgrade)
        finally:
            await connection.exec_driver_sql(f"PRAGMA busy_timeout={int(usual)}")
