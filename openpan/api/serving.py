"""Sending a blob to a client: the one path behind direct links and download links.

Both the image bed's public links and the cloud disk's temporary download links answer through
``blob_response`` (or ``send_blob``, its raw-ASGI form), so ranges, HEAD, validators, caching
headers and traffic accounting behave the same everywhere:

* ``ETag`` (the md5) and ``Last-Modified``; ``If-None-Match`` / ``If-Modified-Since`` → 304.
* ``Accept-Ranges: bytes``; one range → 206 with ``Content-Range``; a range past the end → 416
  with ``Content-Range: bytes */{size}``. Several ranges in one request are answered with the
  whole file (200), which HTTP allows; so are malformed ranges and a stale ``If-Range``.
* ``Content-Type`` from the caller, ``X-Content-Type-Options: nosniff`` and a sandboxing
  ``Content-Security-Policy``, so an uploaded SVG or HTML never runs script on this origin.
* ``Cache-Control``: a year and ``immutable`` for content-addressed links, ``no-cache``
  (revalidate with the ETag) for temporary ones.

Bytes: small blobs come from memory (``HotBlobs``), larger ones from the file in windows
that are memory-mapped and handed to the server without a copy, one window at a time, so memory
does not grow with the file. A client that goes away stops the transfer at the next window.
``on_sent(n)`` is told the body bytes handed to the server (HEAD, 304 and 416 send none).
Blobs in an object store (no local file) are fetched or redirected by ``object_serving``.
"""

from __future__ import annotations

import asyncio
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from openpan.api.conditional import (
    UNSATISFIABLE,
    http_date,
    not_modified,
    parse_range,
    range_matches,
)
from openpan.api.object_serving import object_response
from openpan.services.context import Context
from openpan.services.hot_blobs import HotBlobs
from openpan.storage import StorageError

IMMUTABLE = b"public, max-age=31536000, immutable"
REVALIDATE = b"private, no-cache"
# Scripts, plugins and forms of a served file are disabled even when it is opened directly.
SANDBOX = b"default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; sandbox"
# Bytes mapped and handed to the server at a time when streaming a file.
WINDOW = 1024 * 1024
_PAGE = mmap.ALLOCATIONGRANULARITY

# Raster images cannot carry script; anything else (SVG above all) is sandboxed.
INERT_TYPES = frozenset(
    {"image/png", "image/gif", "image/jpeg", "image/tiff", "image/webp", "image/bmp"}
)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The header values of a blob that do not depend on the request."""

    etag: bytes
    last_modified: bytes
    validators: list[tuple[bytes, bytes]]
    whole: list[tuple[bytes, bytes]]
    """The headers of a 200 answer; ``content-length`` first."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What is known about a blob before any of its bytes are read."""

    key: str
    size: int
    etag: str
    modified: datetime
    media_type: str
    download_name: str | None = None
    immutable: bool = True
    vary_accept: bool = False
    """The answer depends on the request's ``Accept`` (an image variant in the format it
    prefers): say so to caches."""
    prepared: _Prepared = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once per blob description; a hot link reuses it for every request.
        object.__setattr__(self, "prepared", _prepare(self))


def _prepare(blob: BlobInfo) -> _Prepared:
    etag = b'"%s"' % blob.etag.encode()
    last_modified = http_date(blob.modified)
    validators = [
        (b"etag", etag),
        (b"last-modified", last_modified),
        (b"cache-control", IMMUTABLE if blob.immutable else REVALIDATE),
    ]
    if blob.vary_accept:
        validators.append((b"vary", b"Accept"))
    whole = [
        (b"content-length", b"%d" % blob.size),
        (b"content-type", blob.media_type.encode("latin-1")),
        *validators,
        (b"accept-ranges", b"bytes"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if blob.media_type not in INERT_TYPES:
        whole.append((b"content-security-policy", SANDBOX))
    if blob.download_name is not None:
        whole.append((b"content-disposition", content_disposition(blob.download_name)))
    return _Prepared(etag, last_modified, validators, whole)


def not_found() -> Response:
    """The plain 404 of a link that leads nowhere (no envelope: this is not the API)."""
    return PlainResponse(404, "404 Not Found")


def forbidden() -> Response:
    """The plain 403 of a link the owner's access rules refuse."""
    return PlainResponse(403, "403 Forbidden")


class PlainResponse(Response):
    """A short text answer (404, 403), with the same safety headers as the files."""

    def __init__(self, status: int, text: str) -> None:
        self.status_code = status
        self.background = None
        self.body = self._text = text.encode()
        self.raw_headers = _plain_headers(len(self._text))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_plain(send, self.status_code, self._text, scope.get("method") == "HEAD")


def _plain_headers(length: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % length),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]


async def send_plain(send: Send, status: int, body: bytes, head: bool = False) -> None:
    """Send a short plain-text answer through raw ASGI."""
    await send(
        {"type": "http.response.start", "status": status, "headers": _plain_headers(len(body))}
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


class BlobResponse(Response):
    """A Starlette response that sends a blob through ``send_blob``."""

    def __init__(self, ctx: Context, blob: BlobInfo, on_sent: Callable[[int], None] | None) -> None:
        self.status_code = 200
        self.background = None
        self.body = b""
        self.raw_headers = []
        self._ctx = ctx
        self._blob = blob
        self._on_sent = on_sent

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_blob(scope, receive, send, self._ctx, self._blob, self._on_sent)


async def blob_response(
    request: Request,
    ctx: Context,
    *,
    key: str,
    size: int,
    etag: str,
    modified: datetime,
    media_type: str,
    download_name: str | None = None,
    immutable: bool = True,
    on_sent: Callable[[int], None] | None = None,
) -> Response:
    """Serve the blob ``key`` (``size`` bytes, md5 ``etag``, last modified ``modified`` in naive
    UTC) to ``request``.

    ``download_name`` adds ``Content-Disposition: attachment``; ``immutable`` says the URL
    always means these bytes (long caching) rather than being temporary; ``on_sent(n)`` is told
    how many body bytes actually went out (for traffic accounting).
    """
    blob = BlobInfo(key, size, etag, modified, media_type, download_name, immutable)
    return BlobResponse(ctx, blob, on_sent)


def _object_headers(etag: str, immutable: bool, download_name: str | None) -> dict[str, str]:
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": SANDBOX.decode(),
        "ETag": f'"{etag}"',
        "Cache-Control": (IMMUTABLE if immutable else REVALIDATE).decode(),
    }
    if download_name is not None:
        headers["Content-Disposition"] = content_disposition(download_name).decode()
    return headers


# The raw-ASGI sender ------------------------------------------------------------------------


async def send_blob(
    scope: Scope,
    receive: Receive,
    send: Send,
    ctx: Context,
    blob: BlobInfo,
    on_sent: Callable[[int], None] | None = None,
) -> None:
    """Answer the GET or HEAD request in ``scope`` with ``blob`` from the local store."""
    if_none_match = if_modified_since = range_header = if_range = None
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            if_none_match = value.decode("latin-1")
        elif name == b"if-modified-since":
            if_modified_since = value.decode("latin-1")
        elif name == b"range":
            range_header = value.decode("latin-1")
        elif name == b"if-range":
            if_range = value.decode("latin-1")
    head = scope["method"] == "HEAD"
    prepared = blob.prepared
    etag, last_modified, validators = prepared.etag, prepared.last_modified, prepared.validators
    if not_modified(if_none_match, if_modified_since, etag, blob.modified):
        await send({"type": "http.response.start", "status": 304, "headers": list(validators)})
        await send({"type": "http.response.body", "body": b""})
        return

    size = blob.size
    span = None
    if range_header is not None and range_matches(if_range, etag, last_modified):
        span = parse_range(range_header, size)
    if span == UNSATISFIABLE:
        body = b"416 Range Not Satisfiable"
        headers = _plain_headers(len(body))
        headers.append((b"content-range", b"bytes */%d" % size))
        headers += validators
        headers.append((b"accept-ranges", b"bytes"))
        await send({"type": "http.response.start", "status": 416, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else body})
        return
    start, end = span if span is not None else (0, size - 1)
    length = end - start + 1

    data = None
    fd = -1
    if not head and length > 0:
        data = ctx.part(HotBlobs).get(blob.key) if size <= ctx.settings.hot_blob_max else None
        if data is None:
            path = ctx.blobs.local_path(blob.key)
            small = size <= ctx.settings.hot_blob_max
            # From an object store, small blobs are fetched whole once and then served from
            # memory like local ones (when proxying); the rest is streamed or redirected.
            if path is None and not (small and ctx.settings.object_serving == "proxy"):
                await _from_object_store(scope, receive, send, ctx, blob, on_sent)
                return
            try:
                if small:
                    if path is None:
                        data = await _load_object(ctx, blob.key, size)
                    else:
                        data = await _load_small(path, size)
                    ctx.part(HotBlobs).put(blob.key, data, ctx.settings.hot_blob_memory)
                else:
                    assert path is not None
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                # Deleted a moment ago (its last file went): the link leads nowhere now.
                await send_plain(send, 404, b"404 Not Found")
                return
            except StorageError:  # the object store did not answer
                await send_plain(send, 503, b"503 Service Unavailable")
                return
    try:
        if span is None:
            # A copy: middleware may add to the headers of the message it is given.
            status, headers = 200, list(prepared.whole)
        else:
            status = 206
            headers = [
                (b"content-length", b"%d" % length),
                (b"content-range", b"bytes %d-%d/%d" % (start, end, size)),
                *prepared.whole[1:],
            ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if data is not None:
            part = data if length == len(data) else memoryview(data)[start : end + 1]
            await send({"type": "http.response.body", "body": part})
            if on_sent is not None:
                on_sent(length)
        elif fd >= 0:
            await _stream(fd, start, end + 1, receive, send, on_sent)
        else:
            await send({"type": "http.response.body", "body": b""})
    finally:
        if fd >= 0:
            os.close(fd)


async def _from_object_store(
    scope: Scope,
    receive: Receive,
    send: Send,
    ctx: Context,
    blob: BlobInfo,
    on_sent: Callable[[int], None] | None,
) -> None:
    response = await object_response(
        Request(scope, receive),
        ctx,
        key=blob.key,
        size=blob.size,
        etag=blob.etag,
        modified=blob.modified,
        media_type=blob.media_type,
        headers=_object_headers(blob.etag, blob.immutable, blob.download_name),
        download_name=blob.download_name,
        on_sent=on_sent,
    )
    await response(scope, receive, send)


async def _load_object(ctx: Context, key: str, size: int) -> bytes:
    data = b"".join([chunk async for chunk in ctx.blobs.read(key)])
    if len(data) != size:
        raise FileNotFoundError(key)  # not the blob the database describes
    return data


async def _load_small(path: Path, size: int) -> bytes:
    data = await anyio.to_thread.run_sync(path.read_bytes)
    if len(data) != size:
        raise FileNotFoundError(path)  # not the blob the database describes
    return data


async def _stream(
    fd: int,
    start: int,
    stop: int,
    receive: Receive,
    send: Send,
    on_sent: Callable[[int], None] | None,
) -> None:
    """Send bytes ``start..stop`` of the open file ``fd``, a mapped window at a time."""
    gone = False

    async def watch() -> None:
        # The server reports a vanished client as http.disconnect; stop at the next window.
        nonlocal gone
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                gone = True
                return

    watcher = asyncio.ensure_future(watch())
    sent = 0
    position = start
    try:
        os.posix_fadvise(fd, start, stop - start, os.POSIX_FADV_SEQUENTIAL)
        while position < stop and not gone:
            base = position - position % _PAGE
            mapped = mmap.mmap(
                fd, min(stop, base + WINDOW) - base, offset=base, prot=mmap.PROT_READ
            )
            # The server may keep the view until the bytes are written; the mapping is
            # released with the last reference to it, never while in use.
            view: Any = memoryview(mapped)[position - base :]
            chunk = len(view)
            position += chunk
            try:
                await send(
                    {"type": "http.response.body", "body": view, "more_body": position < stop}
                )
            except OSError:
                break
            del view, mapped
            if position < stop:
                # A send to a full socket waits, but one the server drops silently (the client
                # has just gone) does not: yield, so a disconnect is seen before the next window.
                # (After the last window the server reports the finished response the same way.)
                await asyncio.sleep(0)
                if gone:
                    break
            sent += chunk
    finally:
        watcher.cancel()
        if on_sent is not None and sent:
            on_sent(sent)


# HTTP details -------------------------------------------------------------------------------


def content_disposition(name: str) -> bytes:
    """``attachment`` with the name in UTF-8 (RFC 6266) and an ASCII fallback."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    return (f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}").encode(
        "latin-1"
    )
