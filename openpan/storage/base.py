"""The blob-store interface. Backends turn their vendor's errors into ``FileNotFoundError`` or
``StorageError`` so callers never see them.

A store plays three roles, each a protocol of its own so that a caller names the one it uses:

* ``Blobs``: blobs under keys chosen by ``services.blobs`` (immutable once written);
* ``MultipartUploads``: the slices of an upload session, received (or, on an object store,
  presigned for the client to send there), listed, then assembled into a blob;
* ``TempFiles``: scratch files on this machine that ``Blobs.put_file`` can take over.

``BlobStore`` is all three (plus a readiness check): what a backend implements and what the
application holds. Backends: ``local`` (``file://``), ``s3`` (``s3://``), ``memory``
(``memory://``, for tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """The store could not do what was asked (full disk, unreachable object store, ...)."""


class PartSizeError(StorageError):
    """A slice arrived with a different number of bytes than its position requires."""


# A body as it arrives: chunks of bytes, read once.
Chunks = AsyncIterator[bytes]


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    md5: str


@dataclass(frozen=True)
class Assembled:
    """The whole of a multipart upload, hashed and ready to become a blob."""

    md5: str
    size: int


class Blobs(Protocol):
    """Immutable blobs under keys chosen by ``services.blobs``: stored, read, served, removed."""

    # ``put_file`` is a rename within one file system: storing bytes costs no copy, so storing
    # them before looking for an identical blob is cheaper than the look (offline downloads).
    put_moves: bool

    async def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The blob's file on this machine when there is one (lets the server use sendfile)."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``start..end`` (end exclusive, clipped to the blob's size) of a blob, in
        chunks; nothing when ``end <= start``. ``FileNotFoundError`` when there is no blob."""
        ...

    async def put_file(self, key: str, path: Path) -> None:
        """Make the local file at ``path`` the blob ``key``; the file is consumed."""
        ...

    def presign_get(
        self,
        key: str,
        expires_in: int,
        *,
        media_type: str | None = None,
        download_name: str | None = None,
        cache_control: str | None = None,
    ) -> str | None:
        """A short-lived URL at which a client GETs the blob from the store itself, with these
        response headers; ``None`` when the store cannot hand out such URLs (local backend)."""
        ...


class MultipartUploads(Protocol):
    """The slices of an upload session: received (or presigned for the client to send to the
    store itself), listed, then assembled and committed as a blob."""

    async def start_upload(self, upload_id: str, size: int, part_size: int) -> None:
        """Prepare to receive the parts of an upload of ``size`` bytes."""
        ...

    async def presign_part(self, upload_id: str, number: int, expires_in: int) -> str | None:
        """A URL at which the client PUTs part ``number`` directly, or ``None`` when openpan
        receives the part itself (the local backend)."""
        ...

    async def write_part(
        self, upload: str, number: int, offset: int, size: int, body: Chunks, md5: str | None = None
    ) -> None:
        """Store part ``number`` (``size`` bytes at ``offset`` of the whole).

        ``md5`` is the part's md5 when the caller has checked it already (the cloud disk's V2
        slice); otherwise a store that needs none to accept the part does not compute one here
        (``list_parts`` does, when asked). Raises ``PartSizeError`` if the body is longer or
        shorter than ``size``; a part that failed leaves no trace in ``list_parts``. Sending a
        part again replaces it. ``StorageError`` when the upload was not started.
        """
        ...

    async def part_numbers(self, upload_id: str) -> set[int]:
        """The numbers of the parts received so far (cheap: no md5 is computed)."""
        ...

    async def list_parts(self, upload_id: str, part_size: int) -> list[PartInfo]:
        """The parts received so far, by number, with their md5s; every part but the last is
        ``part_size`` bytes (a store that did not hash a part on arrival reads it back)."""
        ...

    async def assemble(self, upload_id: str, part_count: int) -> Assembled:
        """Join parts ``1..part_count`` and hash the whole. Raises ``StorageError`` if one is
        missing."""
        ...

    async def commit_upload(self, upload_id: str, key: str) -> None:
        """Make an assembled upload the blob ``key`` and forget the upload."""
        ...

    async def abort_upload(self, upload_id: str) -> None:
        """Forget an upload and its parts; a missing one is not an error."""
        ...

    async def list_uploads(self) -> list[str]:
        """IDs of the uploads the store holds parts for (to find ones whose session is gone)."""
        ...


class TempFiles(Protocol):
    """Scratch files on this machine (received forms, downloads in progress) that ``put_file``
    can take over cheaply."""

    def temp_path(self) -> Path:
        """A fresh path for a temporary file; nothing is made there yet."""
        ...

    async def cleanup_temp(self, older_than: float) -> None:
        """Remove temporary files older than ``older_than`` seconds (left by a crash)."""
        ...


class BlobStore(Blobs, MultipartUploads, TempFiles, Protocol):
    """All three roles, as one backend plays them: what the application holds (``Context``)
    and hands to each caller as the role it uses."""

    async def check(self) -> None:
        """Raise ``StorageError`` unless the store is usable now (readiness probes)."""
        ...
