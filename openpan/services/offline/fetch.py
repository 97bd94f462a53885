"""The HTTP transfer of one download attempt: request (following redirects through the address
guard), check the answer, stream the body into a partial file, resume with ``Range`` where the
origin allows. It knows nothing of the database: what it learns of the resource and how far it
got reach the caller through a ``Listener``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from yarl import URL

from openpan.db.models import SPACE_OSS
from openpan.services.images import SNIFF_BYTES, sniff_image
from openpan.services.offline.failures import (
    Permanent,
    Restart,
    Transient,
    not_an_image,
    short,
    too_large,
    transport_reason,
)
from openpan.services.offline.names import name_from_response
from openpan.services.offline.remote import Requester
from openpan.settings import Settings
from openpan.storage.partial import PartialFile

# Bytes gathered from the network before they are handed to the writing and hashing threads:
# each hand-over costs thread hops, which a busy machine makes slow. Smaller at first, larger
# once a download proves big; two batches are in memory. 200 downloads of 5 MB at once, 2 MiB
# against 1 MiB at first: 4.82 vs 5.20 s (medians of 5 alternating runs, all 5 faster), the
# server's peak memory the same (145 MB).
BATCH = 2 * 1024 * 1024
BIG_BATCH = 4 * 1024 * 1024
MAX_BACKOFF = 300.0
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Tries of one attempt when the origin keeps changing what it serves.
_RESTARTS = 3


@dataclass
class Resource:
    """What is known of what a transfer fetches; answers update ``validator`` and ``total``."""

    url: str
    space: str
    validator: str | None  # for If-Range: a strong ETag or Last-Modified
    total: int | None  # the whole resource's size, if known
    named: bool  # whether the origin's suggested name is known already
    cap: int | None  # the most bytes the space takes


@dataclass
class Fetched:
    """A transfer's bytes, all in the partial file."""

    md5: str
    size: int
    sniffed: str | None  # the image format, in the image bed


class Listener(Protocol):
    """What the caller of a transfer is told, on the download loop."""

    def learnt(self, **values: Any) -> None:
        """The task's fields an answer told: ``origin_name``, ``validator``, ``bytes_total``,
        ``bytes_done`` (0 when the bytes so far were thrown away)."""

    def received(self, partial: PartialFile, total: int | None) -> None:
        """A batch was handed to ``partial``; its ``synced`` bytes are on disk."""


class Transfer:
    """One attempt at receiving a resource into ``partial`` (which may hold a first part)."""

    def __init__(
        self,
        settings: Settings,
        resource: Resource,
        partial: PartialFile,
        head: bytes,
        listener: Listener,
    ) -> None:
        self.settings = settings
        self.resource = resource
        self.partial = partial
        self.head = head  # the first bytes the partial file keeps, for sniffing
        self.listener = listener

    async def run(self, session: Requester) -> Fetched:
        """Receive the rest of the bytes; raises ``Permanent`` or ``Transient`` otherwise."""
        try:
            for _ in range(_RESTARTS):
                try:
                    return await self._once(session, bytearray(self.head))
                except Restart:
                    await self._restart()
            raise Transient(
                "源站不支持断点续传且内容不断变化 (the origin keeps changing the resource)"
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Connection failures, timeouts, broken answers: worth another try.
            raise Transient(transport_reason(exc)) from exc
        finally:
            # Nothing of the download loop's may be left running once the server's takes over.
            with contextlib.suppress(Exception):  # a failed write has been raised already
                await self.partial.drain(syncing=True)

    async def _restart(self) -> None:
        """Throw away the bytes kept so far and start again from the first byte."""
        self.partial = await self.partial.emptied()
        self.head = b""
        self.resource.validator = None
        self.listener.learnt(bytes_done=0, validator=None)

    async def _open(
        self, session: Requester, offset: int
    ) -> tuple[aiohttp.ClientResponse, list[URL]]:
        """Send the request, following redirects one by one (each through the guard)."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.resource.validator:
                headers["If-Range"] = self.resource.validator
        try:
            url = parse_url(self.resource.url)
        except ValueError as exc:
            raise Permanent(f"不是有效的链接 (not a valid URL: {exc})") from exc
        urls = [url]
        for _ in range(self.settings.offline_max_redirects + 1):
            try:
                response = await session.request("GET", url, headers=headers)
            except aiohttp.InvalidURL as exc:
                raise Permanent(f"不是有效的链接 (not a valid URL: {exc})") from exc
            location = _redirect_location(response)
            if location is None:
                return response, urls
            response.release()
            url = _next_hop(url, location)
            urls.append(url)
        raise Permanent(
            f"重定向次数过多: 超过{self.settings.offline_max_redirects}次 (too many redirects)"
        )

    async def _once(self, session: Requester, head: bytearray) -> Fetched:
        resource = self.resource
        offset = self.partial.written
        response, urls = await self._open(session, offset)
        try:
            total = self._check_answer(response, offset)
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            if encoded and offset:
                raise Restart()  # offsets into a compressed body are not offsets of the file
            if response.status == 200 and offset:
                # The whole resource again (no ranges, or it changed): start over with it.
                await self._restart()
                offset, head = 0, bytearray()
            self._learn(response, urls, total)
            cap = resource.cap
            if cap is not None and total is not None and total > cap:
                raise Permanent(too_large(total, cap, resource.space))
            received, sniffed = await self._receive(response, offset, total, head)
        finally:
            # Back to the pool when the body was read to its end; closed otherwise.
            response.release()
        if total is not None and received != total:
            raise Transient(short(received, total))
        if resource.space == SPACE_OSS and sniffed is None:
            sniffed = _sniff(bytes(head))  # fewer bytes than a sniff reads: the whole body
        return Fetched(md5=self.partial.hasher.hexdigest(), size=received, sniffed=sniffed)

    async def _receive(
        self, response: aiohttp.ClientResponse, offset: int, total: int | None, head: bytearray
    ) -> tuple[int, str | None]:
        """Stream the body into the partial file, in batches; returns the bytes it now holds
        and, in the image bed, the image format once enough bytes came to tell. ``head``
        gathers the first bytes, and an image-bed download that is no image stops as soon as
        they say so."""
        partial, space, cap = self.partial, self.resource.space, self.resource.cap
        sniffed: str | None = None
        checked = space != SPACE_OSS
        if not checked and len(head) >= SNIFF_BYTES:
            sniffed, checked = _sniff(bytes(head)), True
        batch: list[bytes] = []
        batched = 0
        received = offset
        interval = self.settings.offline_progress_interval
        next_progress = time.monotonic() + interval
        try:
            # Each piece as the parser produced it (a compressed body already decoded): no
            # joining, no copy.
            async for chunk, _ in response.content.iter_chunks():
                if not chunk:
                    continue  # the end of a chunk of a chunked body
                received += len(chunk)
                if cap is not None and received > cap:
                    raise Permanent(too_large(received, cap, space))
                if not checked:
                    head += chunk[: SNIFF_BYTES - len(head)]
                    if len(head) >= SNIFF_BYTES:
                        sniffed, checked = _sniff(bytes(head)), True
                batch.append(chunk)
                batched += len(chunk)
                now = time.monotonic()
                if batched >= (BIG_BATCH if received > 4 * BIG_BATCH else BATCH) or (
                    now >= next_progress
                ):
                    durable = now >= next_progress
                    await partial.write(batch, batched, durable)
                    batch, batched = [], 0
                    if durable:
                        next_progress = now + interval
                    self.listener.received(partial, total)
        except aiohttp.ClientPayloadError as exc:  # the body was cut off
            if batch:
                await partial.write(batch, batched)
            # Bytes that arrived with the end of the connection are dropped unread (aiohttp
            # raises first); the origin sent them all the same.
            sent = max(received, offset + response.content.total_bytes)
            if total is not None and sent < total:
                raise Transient(short(sent, total)) from exc
            raise
        if batch:
            await partial.write(batch, batched)
        await partial.drain()
        return received, sniffed

    def _check_answer(self, response: aiohttp.ClientResponse, offset: int) -> int | None:
        """The size of the whole resource if known; raises for answers that carry no bytes."""
        code = response.status
        resource = self.resource
        if code == 206 and offset:
            start, total = _content_range(response.headers.get("content-range", ""))
            if start != offset:
                raise Restart()
            if resource.total is not None and total is not None and total != resource.total:
                raise Restart()
            validator = _validator(response.headers)
            if resource.validator and validator and validator != resource.validator:
                raise Restart()
            return total
        if code == 416 and offset:
            raise Restart()
        if code == 200 or (code == 206 and not offset):
            if code == 206:
                return _content_range(response.headers.get("content-range", ""))[1]
            length = response.headers.get("content-length", "")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            return int(length) if length.isdigit() and not encoded else None
        if code in _TRANSIENT_HTTP or 500 <= code < 600:
            raise Transient(
                f"源站暂时不可用: HTTP {code} (the origin answered {code} {response.reason or ''})",
                _retry_after(response.headers),
            )
        raise Permanent(
            f"源站返回 HTTP {code} (the origin answered {code} {response.reason or ''})"
        )

    def _learn(self, response: aiohttp.ClientResponse, urls: list[URL], total: int | None) -> None:
        """Note what an answer tells: the suggested name, the validator, the size."""
        resource = self.resource
        if not resource.named:
            resource.named = True
            self.listener.learnt(origin_name=name_from_response(response.headers, urls) or "")
        validator = _validator(response.headers)
        if validator != resource.validator and response.status == 200:
            resource.validator = validator
            self.listener.learnt(validator=validator)
        if total != resource.total:
            resource.total = total
            self.listener.learnt(bytes_total=total)


def parse_url(text: str, base: URL | None = None) -> URL:
    """``text`` as a URL, relative to ``base`` if given; ``ValueError`` if it is none."""
    return URL(text) if base is None else base.join(URL(text))


def _sniff(head: bytes) -> str:
    kind = sniff_image(head)
    if kind is None:
        raise Permanent(not_an_image(head))
    return kind


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, whole size) of ``bytes a-b/size``; ``None`` for what is missing."""
    unit, _, spec = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None
    span, _, size = spec.partition("/")
    start_text = span.partition("-")[0].strip()
    start = int(start_text) if start_text.isdigit() else None
    total = int(size) if size.strip().isdigit() else None
    return start, total


def _validator(headers: Mapping[str, str]) -> str | None:
    """A validator for If-Range: a strong ETag, else Last-Modified."""
    etag = headers.get("etag", "").strip()
    if etag and not etag.startswith("W/"):
        return etag[:255]
    modified = headers.get("last-modified", "").strip()
    return modified[:255] or None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after", "").strip()
    return float(min(int(value), int(MAX_BACKOFF))) if value.isdigit() else None


def _redirect_location(response: aiohttp.ClientResponse) -> str | None:
    """Where a redirect points (as written), or ``None`` for any other answer."""
    if response.status not in _REDIRECTS:
        return None
    return response.headers.get("location")


def _next_hop(url: URL, location: str) -> URL:
    """Where a redirect from ``url`` to ``location`` leads, if a download may go there."""
    try:
        target = parse_url(location, base=url)
    except ValueError as exc:
        raise Permanent(f"源站重定向地址无效 (invalid redirect: {exc})") from exc
    if target.scheme not in ("http", "https"):
        raise Permanent(
            f"源站重定向到了不支持的协议: {target.scheme} (redirected to a non-http(s) URL)"
        )
    return target
