"""Where clients reach this server, as ``openpan serve`` last said.

Commands run beside a server (``openpan user add``) print URLs to paste; without this they would
only know the port from their own flags and environment, which need not be the server's.
"""

from __future__ import annotations

from openpan.db.engine import Database
from openpan.db.models import Meta

KEY = "public_url"


async def remember(db: Database, url: str) -> None:
    """Record the base URL the server answers at (called when it starts)."""
    async with db.write() as session:
        row = await session.get(Meta, KEY)
        if row is None:
            session.add(Meta(key=KEY, value=url))
        else:
            row.value = url


async def recorded(db: Database) -> str | None:
    """The base URL the last started server recorded, if any."""
    async with db.read() as session:
        row = await session.get(Meta, KEY)
    return row.value if row else None
