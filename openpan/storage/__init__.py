"""Blob storage backends, chosen by URL at start-up."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from openpan.storage.base import (
    Assembled,
    Blobs,
    BlobStore,
    MultipartUploads,
    PartInfo,
    PartSizeError,
    StorageError,
    TempFiles,
)


def open_store(
    url: str, *, temp_dir: Path | None = None, slice_size: int | None = None
) -> BlobStore:
    """The backend for ``url``: ``file:///path`` (a local directory),
    ``s3://bucket/prefix?endpoint=...&region=...`` (an S3-compatible object store) or
    ``memory://`` (this process's memory; for tests).

    ``temp_dir`` is where an object-store backend keeps temporary files; ``slice_size`` is
    checked against the store's smallest allowed part.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from openpan.storage.local import LocalStore

        return LocalStore(parsed.path)
    if parsed.scheme == "memory":
        from openpan.storage import memory

        return memory.from_url(url, temp_dir=temp_dir)
    if parsed.scheme == "s3":
        try:
            from openpan.storage import s3
        except ImportError as exc:
            raise ValueError(
                f"s3:// storage needs: pip install 'openpan[scaleout]' ({exc})"
            ) from exc

        if slice_size is not None and slice_size < s3.MIN_PART_SIZE:
            raise ValueError(
                f"OPENPAN_SLICE_SIZE={slice_size} is below the object store's smallest part "
                f"({s3.MIN_PART_SIZE} bytes); raise it to use {url.split('?')[0]}"
            )
        return s3.from_url(url, temp_dir=temp_dir)
    raise ValueError(
        f"unsupported storage URL {url!r}: use file:///path, s3://bucket/prefix or memory://"
    )


__all__ = [
    "Assembled",
    "BlobStore",
    "Blobs",
    "MultipartUploads",
    "PartInfo",
    "PartSizeError",
    "StorageError",
    "TempFiles",
    "open_store",
]
