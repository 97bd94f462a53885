"""``Client``: the blocking client. Parallel work (slices, files) runs in threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
from openpan.client._shell import Pages, SyncDriver
from openpan.client._upload import CHUNK

T = TypeVar("T")


class _Stopped(Exception):
    """A sibling flow failed or the caller was interrupted: stop at the next effect."""


class _StopFlag:
    def __init__(self, parent: _StopFlag | None = None) -> None:
        self._event = threading.Event()
        self._parent = parent

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set() or (self._parent is not None and self._parent.is_set())


class Client(BaseClient[httpx.BaseTransport], SyncDriver):
    """A blocking client of an openpan server or of the real 123pan open platform.

    ::

        with Client(base_url="http://127.0.0.1:8123", client_id="…", client_secret="…") as c:
            print(c.upload("cat.jpg").link)

    Give ``client_id`` and ``client_secret`` (a token is fetched on first use, renewed before
    it expires and once after a 401, and kept in ``token_cache`` if given), or a ready
    ``access_token``. ``transport`` is any ``httpx.BaseTransport`` (tests mount fakes or
    wrappers there); ``retries`` applies to 429 answers, dropped connections and slice PUTs.
    """

    def _open(self, transport: httpx.BaseTransport | None) -> None:
        self._http = httpx.Client(transport=transport, timeout=self._timeout)
        self._token_lock = threading.Lock()
        self._slots_lock = threading.Lock()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # Performing calls and flows --------------------------------------------------------------

    def token(self) -> str:
        """The access token in use, fetched first if needed."""
        with self._token_lock:
            token = self._credentials.current()
            if token is None:
                try:
                    fetched = self._send(self._credentials.fetch_call())
                except RateLimitError:
                    raise
                except APIError as exc:  # the server refused the clientID or secret
                    raise AuthenticationError(exc.code, exc.message, exc.trace_id) from exc
                token = self._credentials.accept(fetched)
            return token

    def _send(self, c: Call[T]) -> T:
        attempt = 0
        refreshed = False
        while True:
            token = self.token() if c.auth else None
            request = build_request(self._http, self.base_url, c, token)
            response: httpx.Response | None = None
            sent = True
            try:
                response = self._http.send(request)
                return read_answer(c, response)
            except httpx.HTTPError as exc:
                error: ClientError = transport_error(exc, f"{c.method} {c.path}")
                error.__cause__ = exc
                sent = not never_sent(exc)
            except AuthenticationError:
                if token is not None and not refreshed:
                    with self._token_lock:
                        renew = self._credentials.rejected(token)
                    if renew:
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
            time.sleep(delay)
            attempt += 1

    def _put(self, put: Put) -> None:
        try:
            response = self._http.send(build_put(self._http, put))
        except httpx.HTTPError as exc:
            raise transport_error(exc, "slice PUT") from exc
        check_put(response)

    def _fetch(self, fetch: Fetch) -> int:
        headers = {"Range": f"bytes={fetch.offset}-"} if fetch.offset else {}
        try:
            with self._http.stream(
                "GET", fetch.url, headers=headers, follow_redirects=True
            ) as response:
                mode = fetch_mode(response, fetch.offset)
                if mode == "done":
                    return fetch.offset
                if mode == "rewrite" and fetch.offset and fetch.progress:
                    fetch.progress(-fetch.offset)
                written = fetch.offset if mode == "append" else 0
                with open(fetch.path, "ab" if mode == "append" else "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        if fetch.progress:
                            fetch.progress(len(chunk))
                return written
        except httpx.HTTPError as exc:
            raise transport_error(exc, "download") from exc

    def _drive(self, flow: Flow[T], stop: _StopFlag | None = None) -> T:
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
                    value = self._perform(effect, stop)
                except (ClientError, OSError) as exc:
                    error = exc
        finally:
            flow.close()

    def _perform(self, effect: Effect, stop: _StopFlag | None) -> Any:
        if isinstance(effect, Call):
            return self._send(effect)
        if isinstance(effect, Put):
            return self._put(effect)
        if isinstance(effect, Fetch):
            return self._fetch(effect)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, Blocking):
            return effect.fn(*effect.args)
        if isinstance(effect, Parallel):
            return self._parallel(effect, stop)
        raise TypeError(f"unknown effect {effect!r}")

    def _parallel(self, group: Parallel, stop: _StopFlag | None) -> list[Any]:
        flag = _StopFlag(stop)
        slots = group.slots
        if slots is not None:
            with self._slots_lock:
                if slots.semaphore is None:
                    slots.semaphore = threading.BoundedSemaphore(slots.size)

        def run(flow: Flow[Any]) -> Any:
            if slots is None:
                return self._drive(flow, flag)
            with slots.semaphore:
                return self._drive(flow, flag)

        results: dict[int, Any] = {}
        failures: list[BaseException] = []

        def reap(pending: dict[Future[Any], int]) -> None:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                exc = future.exception()
                if exc is None:
                    results[index] = future.result()
                else:
                    failures.append(exc)
                    flag.set()

        with ThreadPoolExecutor(max_workers=group.limit, thread_name_prefix="openpan") as pool:
            pending: dict[Future[Any], int] = {}
            try:
                for index, flow in enumerate(group.flows):
                    if flag.is_set():
                        flow.close()
                        break
                    pending[pool.submit(run, flow)] = index
                    while len(pending) >= group.limit:
                        reap(pending)
                while pending:
                    reap(pending)
            except BaseException:
                flag.set()
                raise
        if failures:
            raise next((f for f in failures if not isinstance(f, _Stopped)), failures[0])
        return [results[i] for i in sorted(results)]

    def _iterate(self, pages: Pages[T]) -> Iterator[T]:
        while (batch := self._drive(pages.next())) is not None:
            yield from batch

    def access_token(self) -> AccessToken:
        """``POST /api/v1/access_token``: a new token for this client's ID and secret."""
        token = self._send(self._credentials.fetch_call())
        with self._token_lock:
            self._credentials.accept(token)
        return token
