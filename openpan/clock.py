"""The one source of "now", so every rule that depends on time can be tested by moving it.

``OPENPAN_CLOCK_OFFSET`` (seconds, may be negative) shifts the server's clock; tests use it to
cross a day boundary or outlive a deadline without waiting. In emulator mode the control API
moves it while the server runs (``shift``): every deadline, expiry, quota day and rate-limit
window follows, as they all read ``utcnow``, ``now_epoch`` or ``monotonic`` here.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=1)
def _offset() -> timedelta:
    # Read once, when first needed: it is set when the process starts, and "now" is asked for
    # several times by every request (an environment lookup and a parse each time showed up).
    return timedelta(seconds=float(os.environ.get("OPENPAN_CLOCK_OFFSET", "") or 0))


# Moved at run time by the emulator's control API (one process: emulator mode is embedded).
_shift = timedelta()


def shift(by: timedelta | None) -> None:
    """Move the clock by ``by`` more (``None``: back to the configured offset)."""
    global _shift
    _shift = timedelta() if by is None else _shift + by


def shifted() -> timedelta:
    """How far the emulator has moved the clock."""
    return _shift


def utcnow() -> datetime:
    """Naive UTC now: the form every time takes in the database."""
    return datetime.now(UTC).replace(tzinfo=None) + _offset() + _shift


def monotonic() -> float:
    """``time.monotonic()`` moved with the clock: for intervals that moving time should end
    (rate-limit windows)."""
    return time.monotonic() + _shift.total_seconds()


@lru_cache(maxsize=8)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_local(moment: datetime, tz: str) -> datetime:
    """A stored naive-UTC time as an aware time in the answer's time zone."""
    return moment.replace(tzinfo=UTC).astimezone(zone(tz))


def format_api_time(moment: datetime, tz: str) -> str:
    """``2025-03-03 15:43:46``: the real service's createAt/updateAt form."""
    return to_local(moment, tz).strftime("%Y-%m-%d %H:%M:%S")


def format_rfc3339(moment: datetime, tz: str) -> str:
    """``2025-03-23T15:48:37+08:00``: the real service's expiredAt form."""
    return to_local(moment, tz).isoformat(timespec="seconds")


def from_timestamp(seconds: float) -> datetime:
    """A Unix timestamp (as sent in startTime/endTime) as naive UTC."""
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def epoch(moment: datetime) -> int:
    """A stored naive-UTC time as whole Unix seconds."""
    return int((moment - datetime(1970, 1, 1)).total_seconds())
