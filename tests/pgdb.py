"""Throwaway PostgreSQL databases for the PostgreSQL tier and the scale-out tests.

``OPENPAN_TEST_DATABASE=postgresql`` runs the whole suite on PostgreSQL: every test server gets
a database of its own, created here and dropped at the end of the run. ``OPENPAN_TEST_PG``
names the maintenance database to connect to (default: the local server's ``test`` database).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get("OPENPAN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_created: list[str] = []


def postgres_tier() -> bool:
    """Whether this run puts every test server on PostgreSQL."""
    return os.environ.get("OPENPAN_TEST_DATABASE", "sqlite").lower() in ("postgresql", "postgres")


def available() -> bool:
    """Whether the PostgreSQL server answers."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _url_for(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(prefix: str = "openpan_t") -> str:
    """A new empty database; returns its URL. Dropped by ``drop_all`` at the end of the run."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _created.append(name)
    return _url_for(name)


def tier_database(folder: Path) -> str:
    """An empty database of this run's tier, as the server's async URL: PostgreSQL in that tier,
    else an SQLite file in ``folder``."""
    from openpan.settings import normalise_database_url

    if postgres_tier():
        return normalise_database_url(create_database())
    return normalise_database_url(f"sqlite:///{folder / 'openpan.db'}")


def drop_all() -> None:
    """Drop every database this run created (servers still connected are disconnected)."""
    if not _created:
        return
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        while _created:
            name = _created.pop()
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def query(url: str, statement: str, *args: object) -> list[tuple[object, ...]]:
    """Rows of ``statement`` (``?`` placeholders, as in sqlite3) run on the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement.replace("?", "%s"), args)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description else []


class _QmarkConnection:
    """A psycopg connection that takes sqlite3's ``?`` placeholders."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, statement: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(statement.replace("?", "%s"), args)  # type: ignore[arg-type]

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(statement.replace("?", "%s"), rows)  # type: ignore[arg-type]


@contextmanager
def connect(env: Mapping[str, str], data_dir: Path) -> Iterator[Any]:
    """A connection to a test server's metadata database, whichever tier runs: SQLite in its
    data dir, or the PostgreSQL database in its ``OPENPAN_DATABASE_URL``. Statements use ``?``
    placeholders (and ``true``/``false`` for booleans); committed when the block ends."""
    url = env.get("OPENPAN_DATABASE_URL", "")
    if url.startswith("postgres"):
        with psycopg.connect(url) as conn:
            yield _QmarkConnection(conn)
        return
    with closing(sqlite3.connect(data_dir / "openpan.db", timeout=30)) as conn, conn:
        yield conn
