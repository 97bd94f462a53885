"""Simulated remote files (emulator mode): an offline download whose URL was registered
through ``/_openpan/remote`` reads it from memory, at the registered speed, with no network
connection — so the address guard has nothing to judge — and every other URL goes to the
network as usual."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from openpan.services.emulation import RemoteFile

PIECE = 64 * 1024


class Requester(Protocol):
    """What a transfer needs of an HTTP session (``GuardedSession``, or the simulation)."""

    async def request(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Any: ...


class _Body:
    """The body of a simulated answer, read as aiohttp's ``StreamReader.iter_chunks``."""

    def __init__(self, remote: RemoteFile, start: int, end: int) -> None:
        self.remote, self.start, self.end = remote, start, end
        self.total_bytes = 0

    async def iter_chunks(self) -> AsyncIterator[tuple[bytes, bool]]:
        rate = self.remote.bytes_per_second
        piece = max(1024, min(PIECE, rate // 10)) if rate else PIECE
        offset = self.start
        while offset < self.end:
            chunk = self.remote.read(offset, min(piece, self.end - offset))
            if rate:
                await asyncio.sleep(len(chunk) / rate)
            offset += len(chunk)
            self.total_bytes += len(chunk)
            yield chunk, True


class SimulatedResponse:
    """An answer with what a transfer reads of aiohttp's: status, reason, headers, content."""

    def __init__(self, remote: RemoteFile, offset: int) -> None:
        headers: CIMultiDict[str] = CIMultiDict()
        if remote.status != 200:
            body = f"simulated {remote.status}".encode()
            self.status, self.reason = remote.status, "Simulated"
            headers["Content-Type"] = "text/plain"
            headers["Content-Length"] = str(len(body))
            self.content = _Body(RemoteFile(remote.url, body, len(body)), 0, len(body))
        elif 0 < offset < remote.size:
            self.status, self.reason = 206, "Partial Content"
            headers["Content-Type"] = remote.content_type
            headers["Content-Range"] = f"bytes {offset}-{remote.size - 1}/{remote.size}"
            headers["Content-Length"] = str(remote.size - offset)
            headers["ETag"] = f'"sim-{remote.size}"'
            self.content = _Body(remote, offset, remote.size)
        else:
            self.status, self.reason = 200, "OK"
            headers["Content-Type"] = remote.content_type
            headers["Content-Length"] = str(remote.size)
            headers["ETag"] = f'"sim-{remote.size}"'
            self.content = _Body(remote, 0, remote.size)
        self.headers = CIMultiDictProxy(headers)
        self.url = URL(remote.url)

    def release(self) -> None:
        """Nothing to give back: no connection was used."""


class SimulatedSession:
    """``session`` with the registered URLs answered from ``remotes``."""

    def __init__(self, remotes: Mapping[str, RemoteFile], session: Requester) -> None:
        self.remotes = remotes
        self.session = session

    async def request(
        self,
        method: str,
        url: URL,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Any:
        remote = self.remotes.get(str(url))
        if remote is None:
            return await self.session.request(method, url, headers=headers, data=data)
        offset = 0
        wanted = (headers or {}).get("Range", "")
        if wanted.startswith("bytes=") and wanted.endswith("-") and wanted[6:-1].isdigit():
            offset = int(wanted[6:-1])
        return SimulatedResponse(remote, offset)
