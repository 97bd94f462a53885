"""``totalTraffic`` of image-bed files: the bytes their public links actually sent.

A busy link is requested thousands of times a second, so a request never writes to the
database: bytes are added up per file in memory and written in one transaction every
``traffic_flush_interval`` seconds, and once more when the server stops. A crash loses at most
one interval of counting; a clean stop loses nothing.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Table, bindparam, update

from openpan.db.engine import Database
from openpan.db.models import File

log = logging.getLogger("openpan.traffic")
# The table, not the ORM class: one executemany UPDATE for the whole batch.
_files: Table = File.__table__  # type: ignore[assignment]


class FileTraffic:
    """Bytes sent per file since the last write to ``files.total_traffic``."""

    def __init__(self) -> None:
        self._pending: dict[int, int] = {}
        self._lock = asyncio.Lock()

    def add(self, file_id: int, sent: int) -> None:
        """Count ``sent`` bytes of ``file_id``; cheap enough for every response."""
        if sent > 0:
            self._pending[file_id] = self._pending.get(file_id, 0) + sent

    def pending(self, file_id: int) -> int:
        """Bytes of ``file_id`` counted but not written yet."""
        return self._pending.get(file_id, 0)

    async def flush(self, db: Database) -> None:
        """Write what was counted; if the write fails the bytes stay counted for the next try."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            try:
                async with db.write() as session:
                    # A file deleted meanwhile simply matches no row.
                    await session.execute(
                        update(_files)
                        .where(_files.c.id == bindparam("file_id"))
                        .values(total_traffic=_files.c.total_traffic + bindparam("sent")),
                        [{"file_id": k, "sent": v} for k, v in batch.items()],
                    )
            except BaseException:
                for file_id, sent in batch.items():
                    self._pending[file_id] = self._pending.get(file_id, 0) + sent
                raise

    async def run(self, db: Database, interval: float) -> None:
        """Flush every ``interval`` seconds until cancelled (the server's lifespan)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(db)
            except Exception:
                log.exception("writing link traffic failed; keeping it for the next flush")

    async def close(self, db: Database) -> None:
        """The last flush, at shutdown. Never raises: a failure is logged with what is lost."""
        try:
            await self.flush(db)
        except Exception:
            log.exception("link traffic not written at shutdown: %s", self._pending)
