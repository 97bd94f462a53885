"""What a backend checks of what it is given before it touches a file or an object: keys and
upload IDs by their text, part bodies by their length."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from openpan.storage.base import PartSizeError, StorageError

# A blob key (``services.blobs.new_key``): names joined by "/", each starting with a letter or
# digit, so none is "." or "..", none is empty and the key is never absolute: it can only name
# something below the store's blobs.
_BLOB_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")


def checked_blob_key(key: str) -> str:
    """``key``, if it has a blob key's shape; ``StorageError`` otherwise. Checked by its text,
    before it becomes a path or an object key (resolving a path costs a system call per
    directory level on every blob served or stored)."""
    if len(key) > 255 or not _BLOB_KEY.fullmatch(key):
        raise StorageError(f"bad blob key {key!r}")
    return key


def checked_upload_id(upload_id: str) -> str:
    """``upload_id``, if it is a URL-safe token as upload IDs are; ``StorageError`` otherwise,
    before it becomes a path or an object key."""
    if not upload_id or not all(c.isalnum() or c in "-_" for c in upload_id):
        raise StorageError(f"bad upload id {upload_id!r}")
    return upload_id


async def exactly(body: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The chunks of a part's ``body`` as they come; ``PartSizeError`` at the first byte past
    ``size``, or at the end when fewer came (so a backend never keeps a part of the wrong size)."""
    received = 0
    async for chunk in body:
        received += len(chunk)
        if received > size:
            raise PartSizeError(f"slice is larger than {size} bytes")
        yield chunk
    if received != size:
        raise PartSizeError(f"slice has {received} bytes, expected {size}")
