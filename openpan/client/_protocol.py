"""The sans-IO core shared by ``Client`` and ``AsyncClient``.

Nothing here performs I/O. An API call is a ``Call`` (what to send, how to read the answer);
multi-step operations (uploads, downloads, waiting for tasks) are *flows*: generators that
yield effects (``Call``, ``Put``, ``Fetch``, ``Sleep``, ``Blocking``, ``Parallel``) and receive
their results. ``Client`` performs the effects with blocking I/O and threads, ``AsyncClient``
with ``await`` and tasks, so every rule (envelope, retries, upload and resume logic) is written
once. A failed effect is thrown back into its flow, which may handle it.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from openpan.client._exceptions import RateLimitError, TransportError, error_for

T = TypeVar("T")

USER_AGENT = "openpan-client/0.1"
PLATFORM = "open_platform"

# Documented QPS of the real service for free accounts (``dev-notes.md``): after a 429 the
# client waits at least one request interval of the endpoint before trying again.
QPS: dict[str, float] = {
    "/api/v1/user/info": 10,
    "/api/v1/file/move": 3,
    "/api/v1/file/delete": 1,
    "/api/v1/file/list": 0.2,
    "/api/v2/file/list": 5,
    "/upload/v1/file/mkdir": 5,
    "/api/v1/access_token": 8,
}


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: the request to send and how to turn the envelope's ``data`` into ``T``."""

    method: str
    path: str
    parse: Callable[[Any], T]
    query: Mapping[str, Any] | None = None
    json: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    server: str | None = None
    """Another base URL for this call (V2 slice uploads go to the hosts ``create`` names)."""
    auth: bool = True
    idempotent: bool = True
    """Safe to send again after a timeout or a dropped connection (the server may have acted)."""


@dataclass(frozen=True)
class Put:
    """PUT bytes to a presigned URL: no token, no Platform header, answered 200 and empty."""

    url: str
    content: bytes


@dataclass(frozen=True)
class Fetch:
    """GET ``url`` into ``path``, from ``offset`` on (a Range request) when ``offset`` > 0.

    Performed as: 206 → append; 200 → the server ignored the range, rewrite from byte 0;
    416 with ``offset`` > 0 → nothing left to fetch. Returns the file's size afterwards.
    """

    url: str
    path: Path
    offset: int
    progress: Callable[[int], None] | None = None


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Blocking:
    """Run a blocking function (file I/O, hashing); ``AsyncClient`` runs it in a thread."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass
class SlotPool:
    """Slots shared by nested ``Parallel`` effects, so slices of several files in flight at
    once never exceed ``size`` (this is what bounds memory: ``size`` × slice size)."""

    size: int
    semaphore: Any = field(default=None, repr=False)
    """Made by the client that performs the flows (threading or asyncio flavour)."""


@dataclass(frozen=True)
class Parallel:
    """Run flows concurrently, at most ``limit`` at once (and one ``slots`` slot each).

    Flows are taken from the iterable only when a place is free, so a lazy iterable keeps
    memory bounded. The first failure stops new flows from starting and is raised once the
    running ones end; the result is the list of the flows' results in order.
    """

    flows: Iterable[Flow[Any]]
    limit: int
    slots: SlotPool | None = None


Effect = Call[Any] | Put | Fetch | Sleep | Blocking | Parallel
Flow = Generator[Effect, Any, T]


def call(c: Call[T]) -> Flow[T]:
    """``result = yield from call(c)``: a typed way to yield one ``Call`` inside a flow."""
    result: T = yield c
    return result


# Requests and answers --------------------------------------------------------------------------


def build_request(
    http: httpx.Client | httpx.AsyncClient, base_url: str, c: Call[Any], token: str | None
) -> httpx.Request:
    """The HTTP request for a call: the API headers, the body in the shape the endpoint wants."""
    headers = {"Platform": PLATFORM, "User-Agent": USER_AGENT}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = (c.server or base_url).rstrip("/") + c.path
    if c.files is not None:
        return http.build_request(
            c.method, url, params=c.query, data=c.form, files=c.files, headers=headers
        )
    body = None if c.json is None else json.dumps(c.json, ensure_ascii=False).encode()
    if body is not None:
        headers["Content-Type"] = "application/json"
    return http.build_request(c.method, url, params=c.query, content=body, headers=headers)


def build_put(http: httpx.Client | httpx.AsyncClient, put: Put) -> httpx.Request:
    """The slice PUT: deliberately without Authorization and Platform (the URL is the key)."""
    return http.build_request(
        "PUT", put.url, content=put.content, headers={"User-Agent": USER_AGENT}
    )


def read_answer(c: Call[T], response: httpx.Response) -> T:
    """``data`` of an envelope, parsed; ``APIError`` for a non-zero code, else TransportError."""
    url = ""
    with contextlib.suppress(RuntimeError):  # a response made without a request has no URL
        url = str(response.request.url)
    body: Any = None
    with contextlib.suppress(ValueError):
        body = json.loads(response.content)
    if not isinstance(body, dict) or "code" not in body:
        raise TransportError(
            f"HTTP {response.status_code}: not an API answer from {url or 'the server'}",
            status_code=response.status_code,
            url=url,
        )
    trace = str(body.get("x-traceID") or response.headers.get("x-traceid") or "")
    message = str(body.get("message") or "")
    if response.status_code != 200:
        # openpan answers unknown endpoints 404 with an envelope; anything but 200 is a
        # transport failure for clients of the real service.
        raise TransportError(
            f"HTTP {response.status_code}: {message or 'error'} ({url})",
            status_code=response.status_code,
            url=url,
        )
    code = body.get("code")
    if code != 0:
        raise error_for(int(code) if isinstance(code, int | float) else 1, message, trace)
    try:
        return c.parse(body.get("data"))
    except ValueError as exc:  # pydantic's ValidationError is one
        raise TransportError(
            f"unexpected answer from {c.path}: {exc}".splitlines()[0],
            status_code=response.status_code,  # an answer came: sending again will not help
            url=url,
        ) from exc


def check_put(response: httpx.Response) -> None:
    """A slice PUT worked only when answered 200."""
    if response.status_code != 200:
        text = response.text[:300].strip()
        raise TransportError(
            f"slice upload refused: HTTP {response.status_code} {text}".rstrip(),
            status_code=response.status_code,
            url=str(response.request.url),
        )


def fetch_mode(response: httpx.Response, offset: int) -> str:
    """How to treat a download answer: ``append`` (206 from ``offset``), ``rewrite`` (200, the
    whole file), or ``done`` (416: nothing after ``offset``). Anything else is an error."""
    status = response.status_code
    if status == 416 and offset > 0:
        return "done"
    if status == 200:
        return "rewrite"
    if status == 206:
        unit, _, spec = response.headers.get("content-range", "").partition(" ")
        start = spec.split("-", 1)[0]
        if unit == "bytes" and start.isdigit() and int(start) == offset:
            return "append"
    raise TransportError(
        f"download refused: HTTP {status}", status_code=status, url=str(response.request.url)
    )


def transport_error(exc: httpx.HTTPError, what: str) -> TransportError:
    """An httpx failure as our ``TransportError``, naming what was being done."""
    url = ""
    with contextlib.suppress(RuntimeError):
        url = str(exc.request.url)
    return TransportError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "), url=url)


def never_sent(exc: httpx.HTTPError) -> bool:
    """True when the request surely did not reach the server (safe to send any call again)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


# Retries ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before trying a call again, or ``None`` to give up.

    429 waits at least one request interval of the endpoint's documented rate (and any
    ``Retry-After``), growing exponentially with jitter. Transport failures are retried for
    idempotent calls, and for any call when the request never left.
    """

    retries: int = 3
    backoff: float = 0.5
    max_delay: float = 30.0

    def exponential(self, attempt: int) -> float:
        base = min(self.max_delay, self.backoff * (2**attempt))
        return base * random.uniform(0.75, 1.25)

    def delay(
        self,
        c: Call[Any],
        error: Exception,
        attempt: int,
        *,
        sent: bool = True,
        retry_after: float | None = None,
    ) -> float | None:
        if attempt >= self.retries:
            return None
        if isinstance(error, RateLimitError):
            interval = 1.0 / QPS.get(c.path, 2.0)
            return min(
                self.max_delay * 2, max(interval, retry_after or 0, self.exponential(attempt))
            )
        if isinstance(error, TransportError) and (c.idempotent or not sent):
            status = error.status_code
            if status is None or status in (408, 425, 500, 502, 503, 504):
                return self.exponential(attempt)
        return None


def retry_after(response: httpx.Response | None) -> float | None:
    """Seconds from a ``Retry-After`` header, if the server sent one in seconds."""
    if response is None:
        return None
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
