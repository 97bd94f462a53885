"""Per-client QPS limits of the real service (code 429), as token buckets in memory.

The table is the real service's (``dev-notes.md``): free users and VIP users have different
rates. A bucket holds up to one second's worth of requests (at least one), so a client that
keeps to the documented QPS is never refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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

    def check(self, client: str, path: str, vip: bool = False) -> None:
        """Take one request from the bucket, or raise ``RateLimited``."""
        if not self.enabled or path not in LIMITS:
            return
        free, paid = LIMITS[path]
        rate = paid if vip else free
        capacity = max(1.0, rate)
        now = time.monotonic()
        bucket = self._buckets.get((client, path))
        if bucket is None:
            if len(self._buckets) > 100_000:
                self._buckets.clear()  # bounded memory; forgetting only ever lets requests in
            bucket = self._buckets[(client, path)] = _Bucket(tokens=capacity, updated=now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            raise RateLimited(f"请求太频繁: {path} 限制为每秒{rate:g}次 (too many requests)")
        bucket.tokens -= 1
