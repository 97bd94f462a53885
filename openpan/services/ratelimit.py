"""Per-client QPS limits of the real service (code 429), as token buckets.

The table is the real service's (``dev-notes.md``): free users and VIP users have different
rates. A bucket holds up to one second's worth of requests (at least one), so a client that
keeps to the documented QPS is never refused.

One process (SQLite) keeps the buckets in memory. On PostgreSQL, where several API processes
serve the same clients, the buckets live in the ``rate_buckets`` table and one atomic upsert
refills and takes from a bucket, so the limit holds across all processes together.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Float, String, bindparam, text

from openpan import clock
from openpan.db.engine import Database
from openpan.errors import RateLimited

# path → (free QPS, VIP QPS)
LIMITS: dict[str, tuple[float, float]] = {
    "/api/v1/user/info": (10, 10),
    "/api/v1/file/move": (3, 10),
    "/api/v1/file/delete": (1, 10),
    "/api/v1/file/list": (0.2, 10),
    "/api/v2/file/list": (5, 10),
    "/upload/v1/file/mkdir": (5, 20),
    "/api/v1/access_token": (8, 10),
}


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by (client, path)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    async def check(self, client: str, path: str, vip: bool = False) -> None:
        """Take one request from the bucket, or raise ``RateLimited``."""
        if not self.enabled or path not in LIMITS:
            return
        free, paid = LIMITS[path]
        rate = paid if vip else free
        capacity = max(1.0, rate)
        now = clock.monotonic()
        bucket = self._buckets.get((client, path))
        if bucket is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()  # bounded memory; forgetting only ever lets requests in
            bucket = self._buckets[(client, path)] = _Bucket(tokens=capacity, updated=now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise _refused(path, rate)
        bucket.tokens -= 1


def _refused(path: str, rate: float) -> RateLimited:
    return RateLimited(f"请求太频繁: {path} 限制为每秒{rate:g}次 (too many requests)")


# Refill by the time since the last request (database clock), then take one token if there is
# a whole one; ``allowed`` records which happened. A row lock serialises concurrent takers.
_TAKE = text(
    """
    INSERT INTO rate_buckets (key, tokens, updated, allowed)
    VALUES (:key, :capacity - 1, EXTRACT(EPOCH FROM clock_timestamp()), true)
    ON CONFLICT (key) DO UPDATE SET
        tokens = LEAST(:capacity, rate_buckets.tokens
                 + (EXTRACT(EPOCH FROM clock_timestamp()) - rate_buckets.updated) * :rate)
                 - CASE WHEN LEAST(:capacity, rate_buckets.tokens
                        + (EXTRACT(EPOCH FROM clock_timestamp()) - rate_buckets.updated) * :rate)
                        >= 1 THEN 1 ELSE 0 END,
        updated = EXTRACT(EPOCH FROM clock_timestamp()),
        allowed = LEAST(:capacity, rate_buckets.tokens
                  + (EXTRACT(EPOCH FROM clock_timestamp()) - rate_buckets.updated) * :rate) >= 1
    RETURNING allowed
    """
).bindparams(
    bindparam("key", type_=String),
    bindparam("capacity", type_=Float),
    bindparam("rate", type_=Float),
)


class SharedRateLimiter:
    """The same token buckets, kept in the database for every process (PostgreSQL)."""

    def __init__(self, db: Database, enabled: bool = True) -> None:
        self.db = db
        self.enabled = enabled

    async def check(self, client: str, path: str, vip: bool = False) -> None:
        """Take one request from the shared bucket, or raise ``RateLimited``."""
        if not self.enabled or path not in LIMITS:
            return
        free, paid = LIMITS[path]
        rate = paid if vip else free
        async with self.db.write() as session:
            allowed = await session.scalar(
                _TAKE,
                {"key": f"{client}|{path}", "capacity": max(1.0, rate), "rate": rate},
            )
        if not allowed:
            raise _refused(path, rate)


def make_limiter(db: Database, enabled: bool = True) -> RateLimiter | SharedRateLimiter:
    """In memory for one process (SQLite); in the database when processes share it."""
    if db.is_sqlite:
        return RateLimiter(enabled=enabled)
    return SharedRateLimiter(db, enabled=enabled)
