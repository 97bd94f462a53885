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
from datetime import datetime

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from openpan.api.conditional import (
    UNSATISFIABLE,
    http_date,
    not_modified,
    parse_range,
    range_matches,
)
from openpan.services.context import Context
from openpan.storage import StorageError


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
    quoted = f'"{etag}"'.encode()
    last_modified = http_date(modified)
    base = dict(headers)
    base.setdefault("ETag", quoted.decode())
    base.setdefault("Last-Modified", last_modified.decode())
    base.setdefault("Accept-Ranges", "bytes")
    if not_modified(
        request.headers.get("if-none-match"),
        request.headers.get("if-modified-since"),
        quoted,
        modified,
    ):
        kept = ("etag", "last-modified", "cache-control", "vary", "expires")
        return Response(
            status_code=304, headers={k: v for k, v in base.items() if k.lower() in kept}
        )
    span = None
    range_header = request.headers.get("range")
    if range_header is not None and range_matches(
        request.headers.get("if-range"), quoted, last_modified
    ):
        span = parse_range(range_header, size)
    if span == UNSATISFIABLE:
        return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    # parse_range's last byte is inclusive; the store reads to an exclusive end.
    start, end = (span[0], span[1] + 1) if span is not None else (0, size)
    status = 206 if span is not None else 200
    if span is not None:
        base["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    base["Content-Length"] = str(end - start)
    base["Content-Type"] = media_type

    if ctx.settings.object_serving == "redirect":
        url = ctx.blobs.presign_get(
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
    chunks = ctx.blobs.read(key, start, end)
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
