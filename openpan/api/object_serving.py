"""Serving blobs that live in an object store (no local file to sendfile from).

Two ways, chosen by ``OPENPAN_OBJECT_SERVING``:

* ``proxy`` (default): openpan streams the bytes from the store to the client, so links work
  even when the store is on an internal network. Validators, ranges, HEAD and headers are
  exactly those of the local backend; ``on_sent`` counts the bytes that went out.
* ``redirect``: openpan answers conditional requests itself (304), then redirects to a
  short-lived presigned GET whose response headers (type, disposition, caching) are set by the
  signature; the store then serves the bytes and the range. The traffic counted is what the
  redirect grants (the requested range, else the whole file), since openpan never sees the
  bytes go out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from openpan.services.context import Context
from openpan.storage import StorageError

IMMUTABLE = "public, max-age=31536000, immutable"


def http_date(moment: datetime) -> str:
    """A naive-UTC time as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return format_datetime(moment.replace(tzinfo=UTC, microsecond=0), usegmt=True)


def _not_modified(request: Request, etag: str, modified: datetime) -> bool:
    tags = request.headers.get("if-none-match")
    if tags is not None:
        wanted = {t.strip().removeprefix("W/") for t in tags.split(",")}
        return "*" in wanted or f'"{etag}"' in wanted
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    return modified.replace(tzinfo=UTC, microsecond=0) <= when


def parse_range(
    request: Request, size: int, etag: str, modified: datetime
) -> tuple[int, int] | None:
    """The single byte range asked for, as ``(start, end)`` with ``end`` exclusive; ``None``
    for the whole file (no Range, several ranges, a stale If-Range, or a malformed header).

    Raises ``ValueError`` for a well-formed range that the file cannot satisfy (416).
    """
    header = request.headers.get("range")
    if not header or request.method not in ("GET", "HEAD"):
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() not in (f'"{etag}"', http_date(modified)):
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first.isdigit():  # suffix: the last N bytes
        length = int(last)
        if length == 0:
            raise ValueError("empty suffix range")
        return max(0, size - length), size
    start = int(first)
    if last and not last.isdigit():
        return None
    end = min(size, int(last) + 1) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError("range starts beyond the end")
    return start, end


async def _counted(
    chunks: AsyncIterator[bytes], on_sent: Callable[[int], None] | None
) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for chunk in chunks:
            yield chunk
            # Counted once the server took the chunk: a client that goes away mid-file is
            # charged for what it was sent.
            sent += len(chunk)
    finally:
        if on_sent is not None and sent:
            on_sent(sent)


async def object_response(
    request: Request,
    ctx: Context,
    *,
    key: str,
    size: int,
    etag: str,
    modified: datetime,
    media_type: str,
    headers: Mapping[str, str],
    download_name: str | None = None,
    on_sent: Callable[[int], None] | None = None,
) -> Response:
    """Answer ``request`` for the blob ``key`` in an object store, proxying or redirecting.

    ``headers`` are the ones every answer about this blob carries (validators, caching,
    type options, disposition), as the local backend sends them.
    """
    base = dict(headers)
    base.setdefault("ETag", f'"{etag}"')
    base.setdefault("Last-Modified", http_date(modified))
    base.setdefault("Accept-Ranges", "bytes")
    if _not_modified(request, etag, modified):
        kept = ("etag", "last-modified", "cache-control", "vary", "expires")
        return Response(
            status_code=304, headers={k: v for k, v in base.items() if k.lower() in kept}
        )
    try:
        span = parse_range(request, size, etag, modified)
    except ValueError:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    start, end = span if span is not None else (0, size)
    status = 206 if span is not None else 200
    if span is not None:
        base["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    base["Content-Length"] = str(end - start)
    base["Content-Type"] = media_type

    if ctx.settings.object_serving == "redirect":
        url = ctx.store.presign_get(
            key,
            ctx.settings.object_redirect_ttl,
            media_type=media_type,
            download_name=download_name,
            cache_control=base.get("Cache-Control"),
        )
        if url is not None:
            if on_sent is not None and request.method != "HEAD" and end > start:
                on_sent(end - start)
            return Response(
                status_code=302,
                headers={
                    "Location": url,
                    # The presigned URL expires: the redirect itself must not be cached.
                    "Cache-Control": "no-store",
                    "ETag": base["ETag"],
                },
            )
    if request.method == "HEAD" or end == start:
        return Response(status_code=status, headers=base)
    chunks = ctx.store.read(key, start, end)
    try:
        # The first chunk before the status line: a blob missing from the store is a 404,
        # not a response cut off after its headers.
        first = await anext(chunks)
    except FileNotFoundError:
        return PlainTextResponse("404 Not Found", status_code=404)
    except StorageError:  # the store did not answer: say so rather than fail the connection
        return PlainTextResponse("503 Service Unavailable", status_code=503)
    except StopAsyncIteration:
        first = b""
    return StreamingResponse(
        _counted(_prepend(first, chunks), on_sent),
        status_code=status,
        headers=base,
        media_type=media_type,
    )


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
