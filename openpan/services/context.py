"""What every service function works with, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from openpan.db.engine import Database
from openpan.jobs.runner import JobRunner
from openpan.services.daily_traffic import DailyTraffic
from openpan.services.hot_blobs import HotBlobs
from openpan.services.public_links import LinkCache
from openpan.services.traffic import FileTraffic
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
    # Download-link bytes per user and day, counted in memory between writes (the 5113 quota).
    daily_traffic: DailyTraffic = field(default_factory=DailyTraffic, repr=False)
    # Public links: bytes sent per file (totalTraffic), recent lookups, hot small blobs.
    file_traffic: FileTraffic = field(default_factory=FileTraffic, repr=False)
    link_cache: LinkCache = field(default_factory=LinkCache, repr=False)
    hot_blobs: HotBlobs = field(default_factory=HotBlobs, repr=False)
