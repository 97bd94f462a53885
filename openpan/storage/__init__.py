"""Blob storage backends, chosen by URL at start-up."""

from __future__ import annotations

from urllib.parse import urlparse

from openpan.storage.base import Assembled, BlobStore, PartInfo, PartSizeError, StorageError


def open_store(url: str) -> BlobStore:
    """The backend for ``url``: ``file:///path`` (a local directory)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from openpan.storage.local import LocalStore

        return LocalStore(parsed.path)
    raise ValueError(f"unsupported storage URL {url!r}: use file:///path")


__all__ = ["Assembled", "BlobStore", "PartInfo", "PartSizeError", "StorageError", "open_store"]
