"""Temporary files in one folder on this machine: the ``TempFiles`` role every backend plays
the same way (the local store keeps the folder beside its blobs, so ``put_file`` is a rename)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path


class TempFolder:
    """``TempFiles`` in the folder ``self.tmp``, which the backend makes before first use."""

    tmp: Path

    def temp_path(self) -> Path:
        return self.tmp / uuid.uuid4().hex

    async def cleanup_temp(self, older_than: float) -> None:
        cutoff = time.time() - older_than
        for entry in self.tmp.iterdir():
            try:
                if entry.stat().st_mtime < cutoff:
                    entry.unlink(missing_ok=True)
            except FileNotFoundError:
                continue  # removed meanwhile by another process's cleanup


class NoPresigning:
    """For a store whose bytes pass through openpan only (no URLs of its own to hand out)."""

    async def presign_part(self, upload_id: str, number: int, expires_in: int) -> str | None:
        return None

    def presign_get(self, key: str, expires_in: int, **headers: str | None) -> str | None:
        return None
