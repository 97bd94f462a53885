"""Blob store in a local directory.

Layout under the root::

    blobs/<key>                   immutable blobs (keys look like ``ab/ab12...-1234-x9``)
    uploads/<id>/data             one file per upload; each part is written at its offset
    uploads/<id>/parts/<n>-<size>-w<token>
                                  a marker, made only after part n is fully written, holding
                                  its md5 once known (see ``slice_markers``)
    tmp/                          temporary files, renamed into blobs/ when committed

Writing parts in place means completing an upload needs no copy: the data file is hashed once
(mostly while its parts arrive, see ``running_md5``) and renamed into ``blobs/``. A part that
fails midway has no marker, so it does not count. A part's own md5 is computed only when
``list_parts`` asks for it, unless the caller knew it already.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio

from openpan.storage.background_flush import BackgroundFlush
from openpan.storage.base import Assembled, Chunks, PartInfo, StorageError
from openpan.storage.direct_write import pwrite_all
from openpan.storage.inputs import checked_blob_key, checked_upload_id, exactly
from openpan.storage.running_md5 import RunningMd5, hash_range
from openpan.storage.slice_markers import (
    keep_md5,
    known_md5,
    marker_size,
    new_marker,
    read_markers,
)
from openpan.storage.temp_files import NoPresigning, TempFolder

# Bytes gathered before one write: a thread hop per network chunk would cost more than the
# write, and much larger batches leave the CPU cache before they are copied (measured: 64 KiB
# to 1 MiB cost the same, 4 MiB a quarter more CPU per GiB received).
WRITE_BUFFER = 256 * 1024
READ_CHUNK = 256 * 1024
# Times list_parts hashes a part again when it was replaced while being hashed.
HASH_ATTEMPTS = 3


class LocalStore(TempFolder, NoPresigning):
    """``file:///path``: blobs as files; sendfile-friendly."""

    put_moves = True

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.blobs = self.root / "blobs"
        self.uploads = self.root / "uploads"
        self.tmp = self.root / "tmp"
        for folder in (self.blobs, self.uploads, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        # One writer per part at a time in this process, so a re-sent part never interleaves.
        self._part_locks: dict[tuple[str, int], asyncio.Lock] = {}
        # Uploads being assembled. A slice re-sent now would change bytes already hashed, and
        # after the rename into blobs/ it would change a verified blob other files share.
        self._sealed: set[str] = set()
        # The md5 of each upload, computed while its slices arrive (see running_md5).
        self._md5s = RunningMd5()
        # Their bytes, written to disk while later slices arrive (see background_flush).
        self._flushes = BackgroundFlush()

    # Blobs ---------------------------------------------------------------------------------

    def _blob_path(self, key: str) -> Path:
        # Nothing below blobs/ is a link: a key of the right shape names a path below it.
        return self.blobs / checked_blob_key(key)

    async def exists(self, key: str) -> bool:
        return self._blob_path(key).is_file()

    async def delete(self, key: str) -> None:
        self._blob_path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self._blob_path(key)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        path = self._blob_path(key)
        handle = await anyio.open_file(path, "rb")
        async with handle:
            await handle.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await handle.read(want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    async def put_file(self, key: str, path: Path) -> None:
        target = self._blob_path(key)
        with _storage_errors():
            await anyio.to_thread.run_sync(_durable_rename, path, target)

    # Multipart uploads ---------------------------------------------------------------------

    def _upload_dir(self, upload_id: str) -> Path:
        return self.uploads / checked_upload_id(upload_id)

    async def start_upload(self, upload_id: str, size: int, part_size: int) -> None:
        folder = self._upload_dir(upload_id)
        data = folder / "data"
        with _storage_errors():
            (folder / "parts").mkdir(parents=True, exist_ok=True)
            if not data.exists():
                # Sparse: allocates nothing until parts arrive.
                with open(data, "wb") as handle:
                    handle.truncate(size)
        self._md5s.begin(upload_id, size, part_size)

    async def check(self) -> None:
        if not os.access(self.blobs, os.W_OK) or not os.access(self.uploads, os.W_OK):
            raise StorageError(f"blob directory {self.root} is not writable")

    async def write_part(
        self, upload: str, number: int, offset: int, size: int, body: Chunks, md5: str | None = None
    ) -> None:
        folder = self._upload_dir(upload)
        data = folder / "data"
        if not data.exists():
            raise StorageError("upload not started")
        lock = self._part_locks.setdefault((upload, number), asyncio.Lock())
        async with lock:
            if upload in self._sealed:
                raise StorageError("upload is being completed")
            with _storage_errors():
                await self._write_part(folder, data, number, offset, size, body, md5)
            self._md5s.part_written(upload, folder)
            self._flushes.written(upload, data, size)

    def _forget_locks(self, upload_id: str) -> None:
        for key in [k for k in self._part_locks if k[0] == upload_id]:
            del self._part_locks[key]
        self._sealed.discard(upload_id)
        self._md5s.forget(upload_id)
        self._flushes.forget(upload_id)

    async def _write_part(
        self,
        folder: Path,
        data: Path,
        number: int,
        offset: int,
        size: int,
        body: AsyncIterator[bytes],
        md5: str | None,
    ) -> None:
        parts = folder / "parts"
        # The old marker goes first: while the bytes are being replaced the part is absent.
        for old in parts.glob(f"{number}-*"):
            old.unlink(missing_ok=True)
        written = 0
        fd = os.open(data, os.O_WRONLY)
        try:
            # The network's chunks are written as they are (one pwritev), never joined first.
            pending: list[bytes] = []
            buffered = 0
            async for chunk in exactly(body, size):
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= WRITE_BUFFER:
                    await anyio.to_thread.run_sync(_write, fd, pending, offset + written)
                    written += buffered
                    pending, buffered = [], 0
            if pending:
                await anyio.to_thread.run_sync(_write, fd, pending, offset + written)
                written += buffered
        finally:
            os.close(fd)
        new_marker(parts, number, size, md5)

    async def part_numbers(self, upload_id: str) -> set[int]:
        return set(read_markers(self._upload_dir(upload_id) / "parts"))

    async def list_parts(self, upload_id: str, part_size: int) -> list[PartInfo]:
        parts = self._upload_dir(upload_id) / "parts"
        found: list[PartInfo] = []
        for number, name in sorted(read_markers(parts).items()):
            offset = (number - 1) * part_size
            listed = await self._part_md5(parts, number, name, offset)
            if listed is not None:
                size, md5 = listed
                found.append(PartInfo(number=number, size=size, md5=md5))
        return found

    async def _part_md5(
        self, parts: Path, number: int, name: str, offset: int
    ) -> tuple[int, str] | None:
        """``(size, md5)`` of the complete part whose marker is ``name``: kept in the marker, or
        read back and kept there now. ``None`` when the part is being written again."""
        for _ in range(HASH_ATTEMPTS):
            size = marker_size(name)
            md5 = known_md5(parts, name)
            if md5 is not None:
                return size, md5
            hasher = hashlib.md5()
            with _storage_errors():
                await anyio.to_thread.run_sync(
                    hash_range, parts.parent / "data", hasher, offset, size
                )
            md5 = hasher.hexdigest()
            # No lock is taken (a slow slice PUT of the same part would hold this listing up):
            # a part's marker goes before its bytes are written again, so a marker still there
            # under the same name after hashing means the bytes hashed were that part's.
            current = read_markers(parts).get(number)
            if current == name:
                keep_md5(parts, name, md5)
                return size, md5
            if current is None:
                return None
            name = current
        return None

    async def assemble(self, upload_id: str, part_count: int) -> Assembled:
        self._sealed.add(upload_id)
        # Slices still being written finish first, so the hash covers the bytes that stay.
        for lock in [lock for key, lock in self._part_locks.items() if key[0] == upload_id]:
            async with lock:
                pass
        parts = await self.part_numbers(upload_id)
        missing = [n for n in range(1, part_count + 1) if n not in parts]
        if missing:
            raise StorageError(f"slices missing: {missing[:10]}")
        folder = self._upload_dir(upload_id)
        # The bytes go to disk while the md5 of the last slices is computed, not after it.
        self._flushes.now(upload_id, folder / "data")
        with _storage_errors():
            # Usually hashed already while the slices came in; otherwise hash it now.
            hashed = await self._md5s.finish(upload_id, folder)
            if hashed is None:
                hashed = await anyio.to_thread.run_sync(_hash_file, folder / "data")
        md5, size = hashed
        return Assembled(md5=md5, size=size)

    async def commit_upload(self, upload_id: str, key: str) -> None:
        folder = self._upload_dir(upload_id)
        target = self._blob_path(key)
        with _storage_errors():
            await anyio.to_thread.run_sync(_durable_rename, folder / "data", target)
        shutil.rmtree(folder, ignore_errors=True)
        self._forget_locks(upload_id)

    async def abort_upload(self, upload_id: str) -> None:
        folder = self._upload_dir(upload_id)
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))
        self._forget_locks(upload_id)

    async def list_uploads(self) -> list[str]:
        return [p.name for p in self.uploads.iterdir() if p.is_dir()]


@contextmanager
def _storage_errors() -> Iterator[None]:
    """The operating system's failures (full disk, permissions, a file in the way) as the
    interface's ``StorageError``, without local paths, which are no business of a client."""
    try:
        yield
    except OSError as exc:
        raise StorageError(exc.strerror or type(exc).__name__) from exc


def _write(fd: int, chunks: list[bytes], offset: int) -> None:
    pwrite_all(fd, [memoryview(c) for c in chunks], offset)


def _hash_file(path: Path) -> tuple[str, int]:
    hasher = hashlib.md5()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _durable_rename(source: Path, target: Path) -> None:
    """Move a finished file into place so that it is whole on disk before anyone can see it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(source, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(source, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
