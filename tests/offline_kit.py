"""Helpers for offline-download tests: real origin servers with bad habits, a callback receiver,
and the API calls of a download from submission to its end."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conftest import Api

DISK_CREATE = "/api/v1/offline/download"
DISK_PROCESS = "/api/v1/offline/download/process"
OSS_CREATE = "/api/v1/oss/offline/download"
OSS_PROCESS = "/api/v1/oss/offline/download/process"
DEFAULT_DIR = "来自:离线下载"

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40
HTML = b"<!DOCTYPE html><html><head><title>Not Found</title></head><body>nope</body></html>"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def png_bytes(size: int, seed: bytes = b"") -> bytes:
    """``size`` bytes that start like a PNG, different for each ``seed``."""
    body = hashlib.sha256(seed or str(time.time_ns()).encode()).digest() * (size // 32 + 1)
    return (PNG + body)[:size]


@dataclass
class Seen:
    """One request an origin received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""


# What an origin does for a path: given the handler, answer (and return nothing).
Behaviour = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        origin = self.server.origin
        with origin.lock:
            origin.seen.append(
                Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            behaviour = origin.routes.get(path)
        if behaviour is None:
            self.send_plain(404, b"not found")
            return
        try:
            behaviour(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_HEAD = _handle

    def send_plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_file(
        self,
        data: bytes,
        *,
        ranges: bool = True,
        headers: dict[str, str] | None = None,
        rate: float | None = None,
        stop_after: int | None = None,
    ) -> None:
        """Serve ``data`` (with Range support unless ``ranges`` is False), at ``rate`` bytes
        per second if given; ``stop_after``: drop the connection after that many body bytes."""
        start, end = 0, len(data)
        status = 200
        extra = dict(headers or {})
        wanted = self.headers.get("Range")
        if ranges:
            extra.setdefault("Accept-Ranges", "bytes")
            if wanted and wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                start = int(first or 0)
                end = int(last) + 1 if last else len(data)
                if start >= len(data):
                    self.send_plain(416, b"", {"Content-Range": f"bytes */{len(data)}"})
                    return
                status = 206
                extra["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        body = data[start:end]
        if stop_after is not None:
            body = body[:stop_after]
        piece = 16 * 1024 if rate else 256 * 1024
        for offset in range(0, len(body), piece):
            self.wfile.write(body[offset : offset + piece])
            if rate:
                self.wfile.flush()
                time.sleep(piece / rate)
        self.wfile.flush()
        if stop_after is not None:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, origin: Origin, host: str, port: int = 0) -> None:
        self.origin = origin
        super().__init__((host, port), Handler)


@dataclass
class Origin:
    """A real HTTP server on a local address, answering each path as told."""

    host: str = "127.0.0.1"
    listen_port: int = 0  # 0: any free one
    routes: dict[str, Behaviour] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None

    def start(self) -> Origin:
        self._server = _Server(self, self.host, self.listen_port)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, behaviour: Behaviour) -> str:
        """Answer ``path`` with ``behaviour``; returns its URL."""
        with self.lock:
            self.routes[path] = behaviour
        return self.url(path)

    def requests(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.split("?", 1)[0] == path]

    # Behaviours ----------------------------------------------------------------------------

    def file(self, path: str, data: bytes, **options: Any) -> str:
        return self.route(path, lambda h: h.send_file(data, **options))

    def status(self, path: str, code: int, body: bytes = b"error") -> str:
        return self.route(path, lambda h: h.send_plain(code, body))

    def redirect(self, path: str, target: str, code: int = 302) -> str:
        return self.route(path, lambda h: h.send_plain(code, b"", {"Location": target}))

    def flaky(self, path: str, data: bytes, failures: int, how: str = "503") -> str:
        """Fail the first ``failures`` requests (``503``, ``429``, ``reset``: drop the
        connection midway), then serve ``data``."""
        count = {"n": 0}

        def behaviour(h: Handler) -> None:
            count["n"] += 1
            if count["n"] > failures:
                h.send_file(data)
            elif how == "reset":
                h.send_file(data, stop_after=len(data) // 3)
            else:
                h.send_plain(int(how), b"busy", {"Retry-After": "0"})

        return self.route(path, behaviour)


@contextmanager
def origin_at(host: str = "127.0.0.1", port: int = 0) -> Iterator[Origin]:
    origin = Origin(host=host, listen_port=port).start()
    try:
        yield origin
    finally:
        origin.stop()


class Receiver(Origin):
    """A callback receiver: answers 500 to the first ``failures`` POSTs, then 200."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        count = {"n": 0}

        def behaviour(h: Handler) -> None:
            count["n"] += 1
            h.send_plain(500 if count["n"] <= failures else 200, b"")

        self.routes["/hook"] = behaviour

    @property
    def hook(self) -> str:
        return self.url("/hook")

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(s.body) for s in self.requests("/hook")]

    def wait_for(self, count: int, timeout: float = 60) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.requests("/hook")
            if len(seen) >= count:
                return seen
            time.sleep(0.05)
        raise AssertionError(f"expected {count} callbacks, got {len(self.requests('/hook'))}")


# The API side ------------------------------------------------------------------------------


def submit(api: Api, url: str, oss: bool = False, **fields: Any) -> int:
    """Create a task that must be accepted; returns its taskID (a JSON number)."""
    data = api.ok("POST", OSS_CREATE if oss else DISK_CREATE, {"url": url, **fields})
    assert set(data) == {"taskID"} and type(data["taskID"]) is int, data
    task_id: int = data["taskID"]
    return task_id


def process(api: Api, task_id: int, oss: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = api.ok("GET", OSS_PROCESS if oss else DISK_PROCESS, {"taskID": task_id})
    return data


def wait(
    api: Api,
    task_id: int,
    oss: bool = False,
    until: Callable[[dict[str, Any]], bool] | None = None,
    timeout: float = 90,
) -> dict[str, Any]:
    """Poll until the task ends (or ``until`` holds); returns the last answer. Each answer is
    checked for its shape: ``process`` a float (cloud disk) or an int (image bed) in 0-100."""
    done = until or (lambda p: p["status"] in (1, 2))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = process(api, task_id, oss)
        kind = int if oss else float
        assert type(state["process"]) is kind, state
        assert 0 <= state["process"] <= 100 and state["status"] in (0, 1, 2, 3), state
        if done(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not get there: {process(api, task_id, oss)}")


def succeeded(api: Api, task_id: int, oss: bool = False) -> dict[str, Any]:
    state = wait(api, task_id, oss)
    assert state["status"] == 2 and state["process"] == 100, state
    return state


def failed(api: Api, task_id: int, oss: bool = False) -> dict[str, Any]:
    state = wait(api, task_id, oss)
    assert state["status"] == 1 and state["process"] == 0, state
    return state
