"""What every service function works with, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from openpan.db.engine import Database
from openpan.jobs.runner import JobRunner
from openpan.settings import Settings
from openpan.storage import BlobStore


@dataclass
class Context:
    settings: Settings
    db: Database
    store: BlobStore
    jobs: JobRunner
    # Server-wide secret for tokens and presigned URLs; loaded from the database at start-up.
    signing_key: bytes = field(default=b"", repr=False)
