"""Blob store in this process's memory: ``memory://`` (``memory://?max_bytes=N``).

For unit tests, so that a service can be tested without a directory of blobs or an object
store; never for serving (everything is lost when the process ends, and one process cannot see
another's blobs). It plays every role as the other backends do, errors included, and it is
bounded: blobs and received parts together may hold ``max_bytes`` (64 MiB unless the URL says
otherwise), beyond which storing fails with ``StorageError``, as a full disk would.

Temporary files are real files (services write into them before ``put_file`` takes them over),
in ``temp_dir`` or a fresh folder of the system's temporary directory.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import anyio

from openpan.storage.base import Assembled, Chunks, PartInfo, StorageError
from openpan.storage.inputs import checked_blob_key, checked_upload_id, exactly
from openpan.storage.temp_files import NoPresigning, TempFolder

MAX_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024


@dataclass
class _Upload:
    size: int
    part_size: int
    parts: dict[int, bytes] = field(default_factory=dict)
    # Set by ``assemble``: the upload's bytes, which no part sent later may change.
    whole: bytes | None = None


class MemoryStore(TempFolder, NoPresigning):
    """``memory://``: blobs and parts as bytes in dictionaries; for tests only."""

    put_moves = False  # the file is read into memory

    def __init__(self, *, max_bytes: int = MAX_BYTES, temp_dir: Path | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError(f"memory:// storage needs max_bytes > 0, not {max_bytes}")
        self.max_bytes = max_bytes
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, _Upload] = {}
        if temp_dir is None:
            temp_dir = Path(tempfile.mkdtemp(prefix="openpan-memory-"))
        self.tmp = temp_dir.resolve()
        self.tmp.mkdir(parents=True, exist_ok=True)

    def held(self) -> int:
        """Bytes held now: blobs, parts and assembled uploads."""
        parts = sum(len(p) for u in self.uploads.values() for p in u.parts.values())
        wholes = sum(len(u.whole or b"") for u in self.uploads.values())
        return sum(len(b) for b in self.blobs.values()) + parts + wholes

    def _make_room(self, size: int, freed: int = 0) -> None:
        if self.held() - freed + size > self.max_bytes:
            raise StorageError(f"memory store is full ({self.max_bytes} bytes)")

    async def check(self) -> None:
        return None

    # Blobs ---------------------------------------------------------------------------------

    async def exists(self, key: str) -> bool:
        return checked_blob_key(key) in self.blobs

    async def delete(self, key: str) -> None:
        self.blobs.pop(checked_blob_key(key), None)

    def local_path(self, key: str) -> Path | None:
        return None

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self._read(checked_blob_key(key), start, end)

    async def _read(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        try:
            data = self.blobs[key]
        except KeyError:
            raise FileNotFoundError(f"no blob {key!r}") from None
        stop = len(data) if end is None else min(end, len(data))
        for offset in range(start, stop, READ_CHUNK):
            yield data[offset : min(offset + READ_CHUNK, stop)]

    async def put_file(self, key: str, path: Path) -> None:
        key = checked_blob_key(key)
        try:
            self._make_room(path.stat().st_size, freed=len(self.blobs.get(key, b"")))
            self.blobs[key] = await anyio.Path(path).read_bytes()
        except OSError as exc:
            raise StorageError(exc.strerror or type(exc).__name__) from exc
        path.unlink(missing_ok=True)

    # Multipart uploads ---------------------------------------------------------------------

    def _upload(self, upload_id: str) -> _Upload:
        try:
            return self.uploads[checked_upload_id(upload_id)]
        except KeyError:
            raise StorageError("upload not started") from None

    async def start_upload(self, upload_id: str, size: int, part_size: int) -> None:
        self.uploads.setdefault(checked_upload_id(upload_id), _Upload(size, part_size))

    async def write_part(
        self, upload: str, number: int, offset: int, size: int, body: Chunks, md5: str | None = None
    ) -> None:
        entry = self._upload(upload)
        if entry.whole is not None:
            raise StorageError("upload is being completed")
        # As on disk, the old part goes first: while the bytes are being replaced it is absent.
        entry.parts.pop(number, None)
        chunks: list[bytes] = []
        received = 0
        async for chunk in exactly(body, size):
            received += len(chunk)
            self._make_room(received)
            chunks.append(chunk)
        entry.parts[number] = b"".join(chunks)

    async def part_numbers(self, upload_id: str) -> set[int]:
        upload = self.uploads.get(checked_upload_id(upload_id))
        return set() if upload is None else set(upload.parts)

    async def list_parts(self, upload_id: str, part_size: int) -> list[PartInfo]:
        upload = self.uploads.get(checked_upload_id(upload_id))
        if upload is None:
            return []
        return [
            PartInfo(number=n, size=len(data), md5=hashlib.md5(data).hexdigest())
            for n, data in sorted(upload.parts.items())
        ]

    async def assemble(self, upload_id: str, part_count: int) -> Assembled:
        upload = self.uploads.get(checked_upload_id(upload_id)) or _Upload(0, 0)
        missing = [n for n in range(1, part_count + 1) if n not in upload.parts]
        if missing:
            raise StorageError(f"slices missing: {missing[:10]}")
        if upload.whole is None:
            joined = b"".join(upload.parts[n] for n in range(1, part_count + 1))
            self._make_room(len(joined))
            upload.whole = joined
        return Assembled(md5=hashlib.md5(upload.whole).hexdigest(), size=len(upload.whole))

    async def commit_upload(self, upload_id: str, key: str) -> None:
        key = checked_blob_key(key)
        upload = self._upload(upload_id)
        if upload.whole is None:
            raise StorageError("upload not assembled")
        self.blobs[key] = upload.whole
        del self.uploads[upload_id]

    async def abort_upload(self, upload_id: str) -> None:
        self.uploads.pop(checked_upload_id(upload_id), None)

    async def list_uploads(self) -> list[str]:
        return sorted(self.uploads)


def from_url(url: str, temp_dir: Path | None = None) -> MemoryStore:
    """A ``MemoryStore`` for ``memory://`` or ``memory://?max_bytes=N``."""
    query = {k: v[-1] for k, v in parse_qs(urlparse(url).query).items()}
    unknown = set(query) - {"max_bytes"}
    if unknown:
        raise ValueError(f"unknown memory:// URL parameters: {', '.join(sorted(unknown))}")
    try:
        max_bytes = int(query.get("max_bytes", MAX_BYTES))
    except ValueError:
        raise ValueError(f"memory:// max_bytes must be a number of bytes: {url!r}") from None
    return MemoryStore(max_bytes=max_bytes, temp_dir=temp_dir)
