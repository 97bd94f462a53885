"""Reading a request body so that a refusal is always heard.

A server that answers before it has read what the client is sending, then closes, makes many
clients (``requests``, ``urllib``) fail with ECONNRESET or a broken pipe instead of showing
the answer. So a refused body is read on and thrown away up to ``DISCARD_MAX`` bytes (what
nginx's lingering close does), then answered; a body declared larger than that is answered at
once with ``Connection: close``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

DISCARD_MAX = 64 * 1024 * 1024
# A client that sends slower than this is not waited for.
DISCARD_SECONDS = 30.0


class BodyReader:
    """The body of one request, read from the ASGI channel, knowing whether it was read to its
    end (Starlette's ``Request.stream`` does not say)."""

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self.done = False
        self.read = 0
        length = request.headers.get("content-length", "")
        valid = length.isascii() and length.isdigit() and len(length) < 19
        self.declared = int(length) if valid else None

    async def _next(self) -> bytes:
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self.done = True
            raise ClientDisconnect()
        body: bytes = message.get("body", b"")
        self.done = not message.get("more_body", False)
        self.read += len(body)
        return body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive."""
        while not self.done:
            body = await self._next()
            if body:
                yield body

    @property
    def too_big_to_discard(self) -> bool:
        return self.declared is not None and self.declared > DISCARD_MAX

    async def discard(self) -> bool:
        """Read and drop the rest of the body (up to ``DISCARD_MAX`` in all); whether the
        connection can still be used for the answer and the next request."""
        if self.done:
            return True
        if self.too_big_to_discard:
            return False

        async def rest() -> None:
            while not self.done and self.read <= DISCARD_MAX:
                await self._next()

        try:
            await asyncio.wait_for(rest(), DISCARD_SECONDS)
        except (TimeoutError, ClientDisconnect):
            return False
        return self.done
