"""What every service function works with, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from openpan.db.engine import Database
from openpan.jobs.runner import JobRunner
from openpan.settings import Settings
from openpan.storage import Blobs, BlobStore, MultipartUploads, TempFiles

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    db: Database
    store: BlobStore
    jobs: JobRunner
    # Server-wide secret for tokens and presigned URLs; loaded from the database at start-up.
    signing_key: bytes = field(default=b"", repr=False)
    _parts: dict[type, Any] = field(default_factory=dict, repr=False)

    # The store in each of its roles. A caller takes the role it uses, so that what it needs
    # of storage shows in its code (and a test can hand it a store of that role alone).
    @property
    def blobs(self) -> Blobs:
        return self.store

    @property
    def multipart(self) -> MultipartUploads:
        return self.store

    @property
    def temp_files(self) -> TempFiles:
        return self.store

    def part(self, kind: type[T]) -> T:
        """This process's one ``kind``: the state a feature keeps in memory (a cache, counters
        between writes), made on first use. Each feature module defines and owns its own; the
        context only keeps it for as long as the process serves."""
        try:
            return self._parts[kind]
        except KeyError:
            return self._parts.setdefault(kind, kind())

    def forget_parts(self, keep: tuple[type, ...]) -> None:
        """Drop every feature's memory but ``keep``'s (the emulator's reset): each is made
        again, empty, on next use. Work under way keeps the one it holds."""
        for kind in list(self._parts):
            if kind not in keep:
                del self._parts[kind]
