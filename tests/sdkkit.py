"""Helpers for the SDK and CLI tests: clients for fresh users, transports that watch or break
requests, a skip for endpoints a server does not have, and a local origin for offline tasks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Server

from openpan.client import AsyncClient, Client

Hook = Callable[[httpx.Request], httpx.Response | None]


def creds(server: Server) -> dict[str, str]:
    return server.take_user()


def client(server: Server, tmp: Path, user: dict[str, str] | None = None, **kwargs: Any) -> Client:
    user = user or creds(server)
    kwargs.setdefault("upload_state_dir", tmp / "upload-state")
    return Client(
        base_url=server.url,
        client_id=user["client_id"],
        client_secret=user["client_secret"],
        **kwargs,
    )


def async_client(
    server: Server, tmp: Path, user: dict[str, str] | None = None, **kwargs: Any
) -> AsyncClient:
    user = user or creds(server)
    kwargs.setdefault("upload_state_dir", tmp / "upload-state")
    return AsyncClient(
        base_url=server.url,
        client_id=user["client_id"],
        client_secret=user["client_secret"],
        **kwargs,
    )


class Watch(httpx.BaseTransport):
    """A real transport that records every request and lets a hook answer or break some."""

    def __init__(self, hook: Hook | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.hook = hook
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.puts_in_flight = 0
        self.peak_puts = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen.append((request.method, request.url.path))
        if self.hook is not None:
            answer = self.hook(request)
            if answer is not None:
                return answer
        if request.method != "PUT":
            return self.inner.handle_request(request)
        with self.lock:
            self.puts_in_flight += 1
            self.peak_puts = max(self.peak_puts, self.puts_in_flight)
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            with self.lock:
                self.puts_in_flight -= 1

    def close(self) -> None:
        self.inner.close()

    def count(self, method: str, prefix: str = "") -> int:
        return sum(1 for m, p in self.seen if m == method and p.startswith(prefix))


class AsyncWatch(httpx.AsyncBaseTransport):
    def __init__(self, hook: Hook | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.hook = hook
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        if self.hook is not None:
            answer = self.hook(request)
            if answer is not None:
                return answer
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def count(self, method: str, prefix: str = "") -> int:
        return sum(1 for m, p in self.seen if m == method and p.startswith(prefix))


def slice_number(request: httpx.Request) -> int | None:
    """The slice a presigned PUT carries (openpan's URLs end in ``/<upload>/<number>``)."""
    if request.method != "PUT":
        return None
    tail = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def missing_endpoints(server: Server, *paths: str) -> list[str]:
    """The paths this server answers 404 "no such endpoint" (before any auth)."""
    gone = []
    for path in paths:
        answer = httpx.post(server.url + path, timeout=30)
        if answer.status_code == 404:
            gone.append(path)
    return gone


def need(server: Server, *paths: str) -> None:
    """Skip the test when the server does not implement one of these endpoints."""
    gone = missing_endpoints(server, *paths)
    if gone:
        pytest.skip(f"server answers 404 no such endpoint for {', '.join(gone)}")


@contextmanager
def origin(files: dict[str, bytes]) -> Iterator[str]:
    """A local HTTP origin serving ``files`` by path (for offline downloads); yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.split("?", 1)[0])
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
