"""The download loop: a second event loop, on a thread of its own, where downloads receive their
bytes.

Receiving is the busiest part of a download. On the server's loop it would make every database
round trip wait its turn behind network reads, and SQLite's one writer holds the write lock
through those waits; here, requests and transactions keep the server's loop to themselves.
Writing and hashing happen in worker threads either way (both release the GIL).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from openpan.services.fetch_guard import GuardedSession
from openpan.settings import Settings

T = TypeVar("T")

# aiohttp stops reading a socket when twice this much of its body waits unread, and resumes
# below this: larger than its default (64 KiB), so receiving does not pause at every batch
# hand-over.
READ_BUFFER = 1024 * 1024


class DownloadLoop:
    """The loop, started on first use, and the HTTP sessions downloads share on it."""

    _loop: asyncio.AbstractEventLoop | None = None
    _guard = threading.Lock()
    # Used on the loop's own thread only. One session per allowlist and timeout (in practice
    # one): every download shares its connection pool, DNS cache and TLS context.
    _sessions: ClassVar[dict[tuple[str, float], GuardedSession]] = {}

    @classmethod
    def _get(cls) -> asyncio.AbstractEventLoop:
        with cls._guard:
            if cls._loop is None:
                loop = _new_loop()
                threading.Thread(target=loop.run_forever, name="downloads", daemon=True).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    async def run(cls, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` there; cancelling the caller cancels it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, cls._get()))

    @classmethod
    def session(cls, settings: Settings) -> GuardedSession:
        """The guarded session downloads use, made on first use (call it on the loop)."""
        key = (settings.fetch_allow, settings.offline_timeout)
        session = cls._sessions.get(key)
        if session is None:
            session = cls._sessions[key] = GuardedSession(*key, read_bufsize=READ_BUFFER)
        return session

    @classmethod
    async def close(cls) -> None:
        """Close the sessions and their pooled connections; later downloads make new ones."""
        if cls._loop is None:
            return

        async def close_all() -> None:
            sessions, cls._sessions = list(cls._sessions.values()), {}
            for session in sessions:
                await session.close()

        await cls.run(close_all())


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # installed with uvicorn[standard]; the server's own loop is one too
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
