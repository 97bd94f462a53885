"""Self-use download traffic per user per day (the quota behind code 5113).

Bytes are counted in memory as a download link sends them, and written to ``download_traffic``
shortly after (one write transaction per second at most, however many downloads run). Anything
that asks how much a user has used adds the bytes not written yet, so the quota is exact within
the process; a crash loses at most the last second of counting. The server flushes on shutdown.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from openpan.clock import to_local, utcnow
from openpan.db.engine import Database
from openpan.db.models import DownloadTraffic
from openpan.db.session import Session

log = logging.getLogger("openpan.traffic")

FLUSH_DELAY = 1.0


def today(tz: str) -> str:
    """The current day (``2025-03-23``) in the service's time zone: the quota resets at its
    midnight, as the real service's does at midnight Beijing time."""
    return to_local(utcnow(), tz).date().isoformat()


class DailyTraffic:
    """Download bytes per (user, day): counted in memory, written to the database in the
    background."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, str], int] = {}
        # Being written: still counted, so a check during a flush never sees too little.
        self._in_flight: dict[tuple[int, str], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def add(self, db: Database, user_id: int, day: str, sent: int) -> None:
        """Count ``sent`` bytes; safe to call from a response's send path (never blocks)."""
        if sent <= 0:
            return
        key = (user_id, day)
        self._pending[key] = self._pending.get(key, 0) + sent
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the event loop: the next add or close() writes it
                return
            self._timer = loop.call_later(FLUSH_DELAY, self._start_flush, db)

    def _start_flush(self, db: Database) -> None:
        self._timer = None
        self._flushing = asyncio.get_running_loop().create_task(self._background_flush(db))

    async def _background_flush(self, db: Database) -> None:
        try:
            await self.flush(db)
        except Exception:
            # Already logged; the bytes are pending again, so try once more a little later.
            if self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(FLUSH_DELAY * 5, self._start_flush, db)

    async def used(self, session: Session, user_id: int, day: str) -> int:
        """Bytes sent to ``user_id`` on ``day``, counting those not written yet."""
        stored = await session.scalar(
            select(DownloadTraffic.bytes).where(
                DownloadTraffic.user_id == user_id, DownloadTraffic.day == day
            )
        )
        key = (user_id, day)
        return int(stored or 0) + self._pending.get(key, 0) + self._in_flight.get(key, 0)

    async def flush(self, db: Database) -> None:
        """Write the counted bytes; on failure they stay counted for the next flush."""
        async with self._lock:
            if not self._pending:
                return
            batch = self._in_flight = self._pending
            self._pending = {}
            try:
                async with db.write() as session:
                    for (user_id, day), sent in batch.items():
                        await _add_row(session, user_id, day, sent)
            except Exception:
                log.exception("writing download traffic failed; keeping it for the next flush")
                for key, sent in batch.items():
                    self._pending[key] = self._pending.get(key, 0) + sent
                raise
            finally:
                self._in_flight = {}

    async def close(self, db: Database) -> None:
        """Write what is left and stop (server shutdown). Never raises: a failure is logged."""
        if self._flushing is not None:
            await self._flushing
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            await self.flush(db)
        except Exception:
            log.error("download traffic not written at shutdown: %s", self._pending)


async def _add_row(session: Session, user_id: int, day: str, sent: int) -> None:
    where = (DownloadTraffic.user_id == user_id, DownloadTraffic.day == day)
    done = await session.execute(
        update(DownloadTraffic).where(*where).values(bytes=DownloadTraffic.bytes + sent)
    )
    if done.rowcount == 1:
        return
    try:
        async with session.begin_nested():
            session.add(DownloadTraffic(user_id=user_id, day=day, bytes=sent))
    except IntegrityError:  # another process made the row a moment ago
        await session.execute(
            update(DownloadTraffic).where(*where).values(bytes=DownloadTraffic.bytes + sent)
        )
