"""Test harness: real openpan servers in subprocesses, on free ports, with their own data dirs.

``server`` is one shared server for the session (fast); ``fresh_server`` makes a new one for
tests that restart or kill it. ``api`` is a logged-in client for a new user on ``server``;
``other_api`` a second, separate user (for isolation tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pgdb
import pytest

MiB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``openpan serve`` subprocess."""

    data_dir: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)
    _user_counter: int = 0
    _user_pool: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "openpan",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                httpx.get(self.url + "/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def log_tail(self) -> str:
        """The end of what the server printed (an unexpected error's traceback is logged)."""
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no server log)"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``openpan ...`` against this server's data dir."""
        return subprocess.run(
            [sys.executable, "-m", "openpan", *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def add_user(self, name: str | None = None, vip: bool = False) -> dict[str, str]:
        self._user_counter += 1
        name = name or f"user{self._user_counter}-{os.getpid()}"
        args = ["user", "add", name, "--json"] + (["--vip"] if vip else [])
        done = self.cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        creds: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
        return creds

    def client(self, creds: dict[str, str]) -> Api:
        return Api(self, creds)

    def take_user(self) -> dict[str, str]:
        """A new user's credentials, like ``add_user`` but made twenty at a time (starting a
        process per user costs a second or two on a busy machine)."""
        if not self._user_pool:
            done = subprocess.run(
                [sys.executable, "-c", _MAKE_USERS, str(self.data_dir), "20"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            self._user_pool = json.loads(done.stdout.strip().splitlines()[-1])
        return self._user_pool.pop()


_MAKE_USERS = """
import asyncio, dataclasses, json, sys, uuid
from openpan.db.engine import Database
from openpan.services import users
from openpan.settings import load_settings

async def main(count: int) -> None:
    db = Database(load_settings(data_dir=sys.argv[1]).effective_database_url)
    try:
        made = [await users.create_user(db, f"t-{uuid.uuid4().hex[:12]}") for _ in range(count)]
    finally:
        await db.dispose()
    print(json.dumps([dataclasses.asdict(c) for c in made]))

asyncio.run(main(int(sys.argv[2])))
"""


class Api:
    """A client of one user: fetches a token, sends the auth headers, unwraps the envelope."""

    def __init__(self, server: Server, creds: dict[str, str]) -> None:
        self.server = server
        self.creds = creds
        self.http = httpx.Client(base_url=server.url, timeout=60)
        self.token = self.fetch_token()

    def close(self) -> None:
        self.http.close()

    def fetch_token(self) -> str:
        body = self.http.post(
            "/api/v1/access_token",
            json={"clientID": self.creds["client_id"], "clientSecret": self.creds["client_secret"]},
            headers={"Platform": "open_platform"},
        ).json()
        assert body["code"] == 0, body
        token: str = body["data"]["accessToken"]
        return token

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Platform": "open_platform"}

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The whole envelope of an API call (HTTP 200 asserted)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = self.http.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 200, (response.status_code, response.text)
        body: dict[str, Any] = response.json()
        assert set(body) == {"code", "message", "data", "x-traceID"}, body
        return body

    def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.call("POST", path, json=body or {}, **kwargs)

    def get(self, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.call("GET", path, params=params or {}, **kwargs)

    def ok(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """``data`` of a call that must succeed."""
        envelope = self.get(path, body) if method == "GET" else self.post(path, body)
        # The server's log goes with a failure: an internal error's traceback is only there.
        assert envelope["code"] == 0, f"{envelope}\nserver log:\n{self.server.log_tail()}"
        return envelope["data"]

    # The image-bed upload flow, as a client does it ----------------------------------

    def oss_upload(
        self, data: bytes, filename: str = "a.jpg", parent: str = "", parallel: bool = False
    ) -> str:
        """Upload bytes to the image bed through the whole API flow; returns the fileID."""
        etag = hashlib.md5(data).hexdigest()
        created = self.ok(
            "POST",
            "/upload/v1/oss/file/create",
            {
                "parentFileID": parent,
                "filename": filename,
                "etag": etag,
                "size": len(data),
                "type": 1,
            },
        )
        if created["reuse"]:
            return str(created["fileID"])
        pre, slice_size = created["preuploadID"], created["sliceSize"]
        count = max(1, -(-len(data) // slice_size))
        for number in range(1, count + 1):
            url = self.ok(
                "POST",
                "/upload/v1/oss/file/get_upload_url",
                {"preuploadID": pre, "sliceNo": number},
            )["presignedURL"]
            chunk = data[(number - 1) * slice_size : number * slice_size]
            response = httpx.put(url, content=chunk, timeout=60)
            assert response.status_code == 200, response.text
            assert response.content == b""
        done = self.ok("POST", "/upload/v1/oss/file/upload_complete", {"preuploadID": pre})
        if done["completed"]:
            return str(done["fileID"])
        assert done["async"] is True
        return self.wait_async(pre)

    def wait_async(self, pre: str, path: str = "/upload/v1/oss/file/upload_async_result") -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            result = self.ok("POST", path, {"preuploadID": pre})
            if result["completed"]:
                return str(result["fileID"])
            time.sleep(0.2)
        raise AssertionError("upload did not complete")


def make_server(tmp: Path, **env: str) -> Server:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "OPENPAN_RATE_LIMIT": "false",
        "OPENPAN_SWEEP_INTERVAL": "1",
        "OPENPAN_FETCH_ALLOW": "127.0.0.1/32,::1/128",
        # Link traffic reaches the database within a fraction of a second.
        "OPENPAN_TRAFFIC_FLUSH_INTERVAL": "0.2",
        **env,
    }
    full_env.pop("OPENPAN_CONFIG", None)
    if pgdb.postgres_tier() and "OPENPAN_DATABASE_URL" not in env:
        # The PostgreSQL tier: every server gets a database of its own (restarts keep it).
        full_env["OPENPAN_DATABASE_URL"] = pgdb.create_database()
    return Server(data_dir=data_dir, port=free_port(), env=full_env)


@pytest.fixture(scope="session", autouse=True)
def _test_databases() -> Iterator[None]:
    """Drops the PostgreSQL databases the run created, after every server has stopped."""
    yield
    pgdb.drop_all()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the whole run: 1 MiB slices, synchronous completion up to 2 MiB."""
    srv = make_server(
        tmp_path_factory.mktemp("shared"),
        OPENPAN_SLICE_SIZE=str(MiB),
        OPENPAN_SYNC_COMPLETE_MAX=str(2 * MiB),
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of this test's own (not started), for restarts, kills and special settings."""
    srv = make_server(tmp_path, OPENPAN_SLICE_SIZE=str(MiB), OPENPAN_SYNC_COMPLETE_MAX=str(2 * MiB))
    yield srv
    srv.stop()


@pytest.fixture
def api(server: Server) -> Iterator[Api]:
    client = server.client(server.take_user())
    yield client
    client.close()


@pytest.fixture
def other_api(server: Server) -> Iterator[Api]:
    client = server.client(server.take_user())
    yield client
    client.close()


# Offline downloads with retries, progress writes and callbacks in fractions of a second, and a
# 3 MB image-bed limit (so "too large" needs no 100 MB origin).
OFFLINE_ENV = {
    "OPENPAN_OFFLINE_RETRIES": "3",
    "OPENPAN_OFFLINE_RETRY_DELAY": "0.1",
    "OPENPAN_OFFLINE_PROGRESS_INTERVAL": "0.1",
    "OPENPAN_OFFLINE_TIMEOUT": "2",
    "OPENPAN_OFFLINE_MAX_REDIRECTS": "3",
    "OPENPAN_CALLBACK_RETRIES": "3",
    "OPENPAN_CALLBACK_RETRY_DELAY": "0.1",
    "OPENPAN_OSS_MAX_FILE_SIZE": "3000000",
}


@pytest.fixture(scope="session")
def offline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the offline-download tests (``OFFLINE_ENV``)."""
    srv = make_server(tmp_path_factory.mktemp("offline"), **OFFLINE_ENV)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def offline_api(offline_server: Server) -> Iterator[Api]:
    client = offline_server.client(offline_server.take_user())
    yield client
    client.close()


@pytest.fixture
def offline_other_api(offline_server: Server) -> Iterator[Api]:
    client = offline_server.client(offline_server.take_user())
    yield client
    client.close()


def jpeg_bytes(size: int) -> bytes:
    """``size`` fresh random bytes that start like a JPEG, unlike any other call's."""
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
    return (head + os.urandom(size))[:size]
