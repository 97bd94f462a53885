"""``AsyncClient``: the asyncio client. Parallel work (slices, files) runs as tasks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import httpx

from openpan.client._base import BaseClient
from openpan.client._exceptions import (
    APIError,
    AuthenticationError,
    ClientError,
    RateLimitError,
)
from openpan.client._models import (
    AccessToken,
)
from openpan.client._protocol import (
    Blocking,
    Call,
    Effect,
    Fetch,
    Flow,
    Parallel,
    Put,
    Sleep,
    build_put,
    build_request,
    check_put,
    fetch_mode,
    never_sent,
    read_answer,
    retry_after,
    transport_error,
)
from openpan.client._shell import AsyncDriver, Pages
from openpan.client._upload import CHUNK

T = TypeVar("T")


class _Stopped(Exception):
    """A sibling flow failed: stop at the next effect."""


class _StopFlag:
    def __init__(self, parent: _StopFlag | None = None) -> None:
        self._set = False
        self._parent = parent

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set or (self._parent is not None and self._parent.is_set())


class AsyncClient(BaseClient[httpx.AsyncBaseTransport], AsyncDriver):
    """The asyncio twin of ``Client``: same constructor, same methods, awaited.

    ::

        async with AsyncClient(base_url="http://127.0.0.1:8123", access_token="…") as c:
            uploaded = await c.upload("cat.jpg")

    ``transport`` is any ``httpx.AsyncBaseTransport``, e.g. ``httpx.ASGITransport(app)``.
    """

    def _open(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self._http = httpx.AsyncClient(transport=transport, timeout=self._timeout)
        self._token_lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # Performing calls and flows --------------------------------------------------------------

    async def token(self) -> str:
        """The access token in use, fetched first if needed."""
        async with self._token_lock:
            token = self._credentials.current()
            if token is None:
                try:
                    fetched = await self._send(self._credentials.fetch_call())
                except RateLimitError:
                    raise
                except APIError as exc:  # the server refused the clientID or secret
                    raise AuthenticationError(exc.code, exc.message, exc.trace_id) from exc
                token = self._credentials.accept(fetched)
            return token

    async def _send(self, c: Call[T]) -> T:
        attempt = 0
        refreshed = False
        while True:
            token = await self.token() if c.auth else None
            request = build_request(self._http, self.base_url, c, token)
            response: httpx.Response | None = None
            sent = True
            try:
                response = await self._http.send(request)
                return read_answer(c, response)
            except httpx.HTTPError as exc:
                error: ClientError = transport_error(exc, f"{c.method} {c.path}")
                error.__cause__ = exc
                sent = not never_sent(exc)
            except AuthenticationError:
                if token is not None and not refreshed and self._credentials.rejected(token):
                    refreshed = True
                    continue
                raise
            except ClientError as exc:
                error = exc
            delay = self._policy.delay(
                c, error, attempt, sent=sent, retry_after=retry_after(response)
            )
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def _put(self, put: Put) -> None:
        try:
            response = await self._http.send(build_put(self._http, put))
        except httpx.HTTPError as exc:
            raise transport_error(exc, "slice PUT") from exc
        check_put(response)

    async def _fetch(self, fetch: Fetch) -> int:
        headers = {"Range": f"bytes={fetch.offset}-"} if fetch.offset else {}
        try:
            async with self._http.stream(
                "GET", fetch.url, headers=headers, follow_redirects=True
            ) as response:
                mode = fetch_mode(response, fetch.offset)
                if mode == "done":
                    return fetch.offset
                if mode == "rewrite" and fetch.offset and fetch.progress:
                    fetch.progress(-fetch.offset)
                written = fetch.offset if mode == "append" else 0
                # Plain writes of 1 MiB chunks: they land in the page cache in well under a
                # millisecond, cheaper than a thread hop per chunk.
                with open(fetch.path, "ab" if mode == "append" else "wb") as out:
                    async for chunk in response.aiter_bytes(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        if fetch.progress:
                            fetch.progress(len(chunk))
                return written
        except httpx.HTTPError as exc:
            raise transport_error(exc, "download") from exc

    async def _drive(self, flow: Flow[T], stop: _StopFlag | None = None) -> T:
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    effect = flow.throw(error) if error is not None else flow.send(value)
                except StopIteration as done:
                    result: T = done.value
                    return result
                value, error = None, None
                if stop is not None and stop.is_set():
                    error = _Stopped()
                    continue
                try:
                    value = await self._perform(effect, stop)
                except (ClientError, OSError) as exc:
                    error = exc
        finally:
            flow.close()

    async def _perform(self, effect: Effect, stop: _StopFlag | None) -> Any:
        if isinstance(effect, Call):
            return await self._send(effect)
        if isinstance(effect, Put):
            return await self._put(effect)
        if isinstance(effect, Fetch):
            return await self._fetch(effect)
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, Blocking):
            return await asyncio.to_thread(effect.fn, *effect.args)
        if isinstance(effect, Parallel):
            return await self._parallel(effect, stop)
        raise TypeError(f"unknown effect {effect!r}")

    async def _parallel(self, group: Parallel, stop: _StopFlag | None) -> list[Any]:
        flag = _StopFlag(stop)
        slots = group.slots
        if slots is not None and slots.semaphore is None:
            slots.semaphore = asyncio.Semaphore(slots.size)

        async def run(flow: Flow[Any]) -> Any:
            if slots is None:
                return await self._drive(flow, flag)
            async with slots.semaphore:
                return await self._drive(flow, flag)

        results: dict[int, Any] = {}
        failures: list[BaseException] = []
        pending: dict[asyncio.Task[Any], int] = {}

        async def reap() -> None:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                index = pending.pop(task)
                exc = task.exception()
                if exc is None:
                    results[index] = task.result()
                else:
                    failures.append(exc)
                    flag.set()

        try:
            for index, flow in enumerate(group.flows):
                if flag.is_set():
                    flow.close()
                    break
                pending[asyncio.ensure_future(run(flow))] = index
                while len(pending) >= group.limit:
                    await reap()
            while pending:
                await reap()
        except BaseException:
            flag.set()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        if failures:
            raise next((f for f in failures if not isinstance(f, _Stopped)), failures[0])
        return [results[i] for i in sorted(results)]

    async def _iterate(self, pages: Pages[T]) -> AsyncIterator[T]:
        while (batch := await self._drive(pages.next())) is not None:
            for entry in batch:
                yield entry

    async def access_token(self) -> AccessToken:
        """``POST /api/v1/access_token``: a new token for this client's ID and secret."""
        token = await self._send(self._credentials.fetch_call())
        async with self._token_lock:
            self._credentials.accept(token)
        return token
