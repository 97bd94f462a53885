"""The md5 of a multipart upload, computed while its slices arrive.

``upload_complete`` must check the md5 of the whole file. Hashing a large file only then costs
seconds after the last slice; instead, whenever the slice that continues the hashed prefix is
complete, its bytes are read back (from the page cache, just written) and added to a running
md5 in a worker thread, while further slices keep arriving. At completion only what is left
(often nothing) is hashed.

md5 cannot be combined from pieces, so the prefix is hashed strictly in order, one slice at a
time. A slice written again after it was hashed would make the running md5 wrong; each hashed
slice's marker is remembered and compared at completion (a marker's name changes whenever its
slice may hold new bytes: see ``slice_markers``), and any difference (or anything unexpected)
falls back to hashing the whole file. The state lives in memory: after a restart the upload is
simply hashed at completion.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from openpan.storage.slice_markers import marker_size, read_markers

log = logging.getLogger("openpan.storage")

READ_CHUNK = 4 * 1024 * 1024


@dataclass
class _Running:
    size: int
    part_size: int
    hasher: hashlib._Hash = field(default_factory=hashlib.md5)
    hashed: int = 0
    markers: dict[int, str] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    again: bool = False


class RunningMd5:
    """Running md5s of the uploads in progress in this process."""

    def __init__(self) -> None:
        self._uploads: dict[str, _Running] = {}

    def begin(self, upload_id: str, size: int, part_size: int) -> None:
        """Start following an upload of ``size`` bytes in slices of ``part_size``."""
        if size > 0 and part_size > 0 and upload_id not in self._uploads:
            self._uploads[upload_id] = _Running(size=size, part_size=part_size)

    def part_written(self, upload_id: str, folder: Path) -> None:
        """A slice of the upload in ``folder`` is complete: hash what now continues the prefix,
        in the background."""
        state = self._uploads.get(upload_id)
        if state is None:
            return
        if state.task is not None and not state.task.done():
            state.again = True
            return
        state.task = asyncio.get_running_loop().create_task(self._advance(upload_id, folder))

    def forget(self, upload_id: str) -> None:
        state = self._uploads.pop(upload_id, None)
        if state is not None and state.task is not None:
            state.task.cancel()

    async def finish(self, upload_id: str, folder: Path) -> tuple[str, int] | None:
        """``(md5, size)`` of the whole upload from the running md5, hashing what is left; or
        ``None`` when it cannot be trusted (then the caller hashes the file itself)."""
        state = self._uploads.get(upload_id)
        if state is None:
            return None
        if state.task is not None:
            await asyncio.wait([state.task])  # its outcome is read below, not raised here
        await self._advance(upload_id, folder)
        state = self._uploads.get(upload_id)
        if state is None or state.hashed != state.size:
            return None
        current = read_markers(folder / "parts")
        if any(current.get(number) != name for number, name in state.markers.items()):
            log.info("upload %s: a slice changed after it was hashed; hashing again", upload_id)
            self.forget(upload_id)
            return None
        return state.hasher.hexdigest(), state.size

    async def _advance(self, upload_id: str, folder: Path) -> None:
        try:
            while True:
                await self._hash_ready(upload_id, folder)
                state = self._uploads.get(upload_id)
                if state is None or not state.again:
                    return
                state.again = False
        except Exception:
            # Never worse than not trying: completion hashes the whole file.
            log.exception("running md5 of upload %s failed", upload_id)
            self._uploads.pop(upload_id, None)

    async def _hash_ready(self, upload_id: str, folder: Path) -> None:
        """Hash complete slices in order from the end of the prefix until one is missing."""
        parts = folder / "parts"
        data = folder / "data"
        while (state := self._uploads.get(upload_id)) is not None and state.hashed < state.size:
            number = state.hashed // state.part_size + 1
            length = min(state.part_size, state.size - state.hashed)
            marker = read_markers(parts).get(number)
            if marker is None:
                return
            if marker_size(marker) != length:
                self._uploads.pop(upload_id, None)
                return
            await anyio.to_thread.run_sync(hash_range, data, state.hasher, state.hashed, length)
            # Written again while it was read (its old marker went first)? Then the md5 is lost.
            current = read_markers(parts).get(number)
            if self._uploads.get(upload_id) is not state or current != marker:
                self._uploads.pop(upload_id, None)
                return
            state.markers[number] = marker
            state.hashed += length


def hash_range(path: Path, hasher: hashlib._Hash, offset: int, length: int) -> None:
    """Add ``length`` bytes of the file at ``path`` from ``offset`` to ``hasher``."""
    # One buffer for the whole range: a fresh allocation per read costs more than the read.
    buffer = bytearray(min(READ_CHUNK, length))
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY)
    try:
        end = offset + length
        while offset < end:
            want = min(len(buffer), end - offset)
            got = os.preadv(fd, [view[:want]], offset)
            if not got:
                raise OSError(f"{path} ends at {offset}, before {end}")
            hasher.update(view[:got])
            offset += got
    finally:
        os.close(fd)
