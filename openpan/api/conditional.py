"""HTTP validators and byte ranges: the rules every blob answer follows, local or object store.

``serving`` (local files, hot blobs) and ``object_serving`` (object stores) both decide 304s,
``If-Range`` and ``Range`` here, so the two backends cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

UNSATISFIABLE = (-1, -1)
"""What ``parse_range`` answers for a range the file cannot satisfy (416)."""


@lru_cache(maxsize=4096)
def http_date(moment: datetime) -> bytes:
    """A naive-UTC time as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return format_datetime(moment.replace(tzinfo=UTC, microsecond=0), usegmt=True).encode()


def _parse_date(text: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(UTC).replace(tzinfo=None)


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: bytes, modified: datetime
) -> bool:
    """Whether the client's copy is current (304). ``If-None-Match`` wins when both are sent."""
    if if_none_match is not None:
        wanted = etag.decode()
        for tag in if_none_match.split(","):
            tag = tag.strip()
            if tag == "*" or tag.removeprefix("W/") == wanted:
                return True
        return False
    if if_modified_since is not None:
        since = _parse_date(if_modified_since)
        return since is not None and modified.replace(microsecond=0) <= since
    return False


def range_matches(if_range: str | None, etag: bytes, last_modified: bytes) -> bool:
    """Whether a ``Range`` applies: no ``If-Range``, or one naming the current bytes (strong
    ETag comparison, or exactly the Last-Modified date)."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == etag.decode()
    return value == last_modified.decode()


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range ``(first, last)`` (inclusive) a ``Range`` header asks of ``size``
    bytes; ``None`` to answer with the whole file (not a byte range, malformed, or several
    ranges); ``(-1, -1)`` when it cannot be satisfied (416)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not _digits(first or "0") or not _digits(last or "0"):
        return None
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return start, min(int(last), size - 1) if last else size - 1


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 19
