"""Write an upload's bytes to disk while its later slices still arrive.

A finished upload becomes visible only after its data file is ``fsync``ed. Left to that moment,
the fsync writes out everything received (about half a second per GiB on the disk measured) after
the last slice, while the client waits. Instead, each time another ``FLUSH_EVERY`` bytes of
slices are complete, the data file is synced in a worker thread, one sync per upload at a time,
so the final fsync finds little left to write. It saves waiting, not work: the bytes are written
once either way. A failed background sync is only logged; the final fsync is the one that counts.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import anyio

log = logging.getLogger("openpan.storage")

FLUSH_EVERY = 32 * 1024 * 1024
# Background syncs at once in the process: they wait on the disk, and must not take the worker
# threads that write the slices of other uploads.
CONCURRENT_SYNCS = 2
# Below this much not yet synced at completion the final fsync is short anyway, and a second
# sync beside it would cost more than it saves (small uploads).
FLUSH_NOW_MIN = 8 * 1024 * 1024


@dataclass
class _Upload:
    unflushed: int = 0
    again: bool = False
    task: asyncio.Task[None] | None = None


class BackgroundFlush:
    """Background syncs of the data files of the uploads in progress in this process."""

    def __init__(self) -> None:
        self._uploads: dict[str, _Upload] = {}
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop

    def written(self, upload_id: str, path: Path, size: int) -> None:
        """``size`` more bytes of the upload's data file at ``path`` are complete."""
        state = self._uploads.setdefault(upload_id, _Upload())
        state.unflushed += size
        if state.unflushed >= FLUSH_EVERY:
            self._start(upload_id, path, state)

    def now(self, upload_id: str, path: Path) -> None:
        """Start syncing what is not on disk yet, if that is much: the upload is about to be
        completed, and the md5 of its last slices may still be being computed meanwhile."""
        state = self._uploads.get(upload_id)
        if state is not None and state.unflushed >= FLUSH_NOW_MIN:
            # A sync under way may have begun before the last slices: it goes round again.
            state.again = True
            self._start(upload_id, path, state)

    def forget(self, upload_id: str) -> None:
        """Stop following an upload (a sync under way ends on its own)."""
        self._uploads.pop(upload_id, None)

    def _start(self, upload_id: str, path: Path, state: _Upload) -> None:
        if state.task is None:
            state.task = asyncio.get_running_loop().create_task(self._sync(upload_id, path, state))

    async def _sync(self, upload_id: str, path: Path, state: _Upload) -> None:
        try:
            # Slices completed while a sync ran get the next one.
            while self._uploads.get(upload_id) is state:
                state.unflushed, state.again = 0, False
                if self._limiter is None:
                    self._limiter = anyio.CapacityLimiter(CONCURRENT_SYNCS)
                await anyio.to_thread.run_sync(_datasync, path, limiter=self._limiter)
                if state.unflushed < FLUSH_EVERY and not state.again:
                    break
        except OSError as exc:
            log.warning("background sync of upload %s failed: %s", upload_id, exc)
        finally:
            state.task = None


def _datasync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # completed or aborted meanwhile
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
