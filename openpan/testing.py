"""openpan as a 123pan emulator for your own test suite.

    from openpan.testing import Emulator

    with Emulator() as emu:                      # a server on a free port, its own data
        emu.seed(files=[{"user": emu.user, "path": "/a/cat.png", "size": 1000}])
        emu.fault("/upload/v1/oss/file/create", times=1, error={"code": 429, "message": "busy"})
        run_my_code(base_url=emu.base_url, client_id=emu.client_id, secret=emu.client_secret)
        assert [r["path"] for r in emu.journal()] == [...]

Under pytest the ``openpan_emulator`` fixture (``openpan.pytest_plugin``, installed with the
package) gives the same object, reset before each test. The user ``tester`` with the fixed
``client_id`` / ``client_secret`` below exists from the start and survives resets, so a test
suite can hard-code them.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

USER = "tester"
CLIENT_ID = "openpan-emulator-client"
CLIENT_SECRET = "openpan-emulator-secret"


class ControlError(Exception):
    """The control API refused a call (its ``{"error": ...}`` message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulator:
    """An ``openpan serve --emulator`` process and its control API."""

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        port: int | None = None,
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        control_token: str | None = None,
        startup_timeout: float = 60,
    ) -> None:
        """``host`` is where it listens (it is always reached on 127.0.0.1); beyond loopback
        the server needs ``control_token`` (default ``OPENPAN_CONTROL_TOKEN`` of ``env`` or
        the environment), which every control call then carries."""
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="openpan-emulator-"))
        self.port = port or _free_port()
        self.env = {**os.environ, **(env or {})}
        self.env.pop("OPENPAN_CONFIG", None)
        self.host = host
        token = control_token or self.env.get("OPENPAN_CONTROL_TOKEN", "")
        if token:
            self.env["OPENPAN_CONTROL_TOKEN"] = token
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.user, self.client_id, self.client_secret = USER, CLIENT_ID, CLIENT_SECRET
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=60)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start the server, and make the default user if the store has none yet."""
        log = open(self.data_dir.parent / f"openpan-emulator-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openpan",
                "serve",
                "--emulator",
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited with status {self.process.returncode}")
            try:
                self._http.get("/_openpan/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start in time") from None
                time.sleep(0.05)
        self._ensure_user()
        return self

    def stop(self) -> None:
        """Stop the server (and remove its data directory if this object made it)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._http.close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # Control API --------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = self._http.request(method, path, json=body)
        data = answer.json()
        if answer.status_code >= 400:
            raise ControlError(answer.status_code, data.get("error", answer.text))
        return data

    def _ensure_user(self) -> None:
        try:
            self.seed(users=[{"name": USER, "clientID": CLIENT_ID, "clientSecret": CLIENT_SECRET}])
        except ControlError as exc:
            if exc.status != 409:  # 409: made already (a restarted emulator keeps its store)
                raise

    def reset(self, *, users: bool = True) -> None:
        """Everything back to empty; users stay unless ``users=False`` (the default user is
        then made again)."""
        self._call("POST", "/_openpan/reset", {"users": users})
        if not users:
            self._ensure_user()

    def seed(
        self, users: list[dict[str, Any]] | None = None, files: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """Make users and files. A file's ``content`` may be bytes (sent base64-encoded)."""
        sent = []
        for entry in files or []:
            entry = dict(entry)
            if isinstance(entry.get("content"), bytes | bytearray):
                entry["content"] = base64.b64encode(entry["content"]).decode()
            entry.setdefault("user", USER)
            sent.append(entry)
        answer: dict[str, Any] = self._call(
            "POST", "/_openpan/seed", {"users": users or [], "files": sent}
        )
        return answer

    def fault(self, path: str, method: str = "", **effect: Any) -> int:
        """Add a fault rule (``error={...}``, ``status=``, ``delay_ms=`` or ``drop=True``,
        with ``times=`` and ``probability=``); returns its ID."""
        body: dict[str, Any] = {"path": path, "method": method}
        for key, value in effect.items():
            body["delayMs" if key == "delay_ms" else key] = value
        return int(self._call("POST", "/_openpan/faults", body)["id"])

    def faults(self) -> list[dict[str, Any]]:
        """The rules, with how often each fired."""
        rules: list[dict[str, Any]] = self._call("GET", "/_openpan/faults")["faults"]
        return rules

    def clear_faults(self, fault_id: int | None = None) -> None:
        self._call("DELETE", "/_openpan/faults" + (f"/{fault_id}" if fault_id else ""))

    def journal(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The requests the server answered, oldest first."""
        path = "/_openpan/journal" + (f"?limit={limit}" if limit else "")
        requests: list[dict[str, Any]] = self._call("GET", path)["requests"]
        return requests

    def clear_journal(self) -> None:
        self._call("DELETE", "/_openpan/journal")

    def now(self) -> datetime:
        return datetime.fromisoformat(self._call("GET", "/_openpan/clock")["now"])

    def advance_clock(self, seconds: float) -> datetime:
        """Move the server's clock forward (token expiry, links, quotas, retries follow)."""
        answer = self._call("POST", "/_openpan/clock", {"advanceSeconds": seconds})
        return datetime.fromisoformat(answer["now"])

    def set_clock(self, moment: datetime) -> None:
        self._call("POST", "/_openpan/clock", {"set": moment.isoformat()})

    def reset_clock(self) -> None:
        self._call("POST", "/_openpan/clock", {"reset": True})

    def remote(
        self,
        url: str,
        content: bytes | None = None,
        *,
        size: int | None = None,
        status: int = 200,
        content_type: str = "application/octet-stream",
        bytes_per_second: int | None = None,
    ) -> None:
        """Serve ``url`` to offline downloads from memory (``content``, or ``size``
        deterministic bytes), at ``bytes_per_second`` if given."""
        body: dict[str, Any] = {"url": url, "status": status, "contentType": content_type}
        if content is not None:
            body["content"] = base64.b64encode(content).decode()
        else:
            body["size"] = size if size is not None else 0
        if bytes_per_second is not None:
            body["bytesPerSecond"] = bytes_per_second
        self._call("POST", "/_openpan/remote", body)

    def config(self, **switches: Any) -> dict[str, Any]:
        """``rateLimits``, ``uploadComplete`` ("async"/"sync"), ``asyncPolls``, ``randomSeed``."""
        answer: dict[str, Any] = self._call("POST", "/_openpan/config", switches)
        return answer

    def review(self, file_id: str, status: int) -> None:
        """Set an image-bed file's review status (above 100: rejected, its link stops)."""
        self._call("POST", "/_openpan/review", {"fileID": file_id, "status": status})

    def client(self, **options: Any) -> Any:
        """The SDK's ``Client`` for the default user."""
        from openpan.client import Client

        return Client(
            base_url=self.base_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            **options,
        )
