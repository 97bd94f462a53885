"""Helpers for the web app's tests: passwords set through the CLI, sessions over HTTP, images,
and a Chromium driven by Playwright (Debian's ``/usr/bin/chromium``)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pyvips
from conftest import Server

CHROMIUM = os.environ.get("OPENPAN_TEST_CHROMIUM", "/usr/bin/chromium")
# As root, without the background services a closed network refuses (see the README).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = (Path(__file__).parent / "web" / "axe.min.js").read_text()
PASSWORD = "correct horse battery staple"


def set_password(
    server: Server, name: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    """``openpan user password NAME`` with the password on standard input (not a terminal)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "openpan",
            "user",
            "password",
            name,
            "--data-dir",
            str(server.data_dir),
        ],
        env=server.env,
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def web_user(server: Server) -> dict[str, str]:
    """A new user who can sign in to the web app with ``PASSWORD``."""
    creds = server.take_user()
    done = set_password(server, creds["name"])
    assert done.returncode == 0, done.stdout + done.stderr
    return creds


class Session:
    """A signed-in browser session over plain HTTP: the cookie and the CSRF token."""

    def __init__(self, server: Server, name: str, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30)
        answer = self.http.post("/web/api/login", json={"name": name, "password": password}).json()
        assert answer["code"] == 0, answer
        self.me: dict[str, Any] = answer["data"]
        self.csrf: str = self.me["csrf"]

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        answer: dict[str, Any] = self.http.request(method, path, headers=headers, **kwargs).json()
        return answer

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.call(method, path, **kwargs)
        assert answer["code"] == 0, answer
        return answer["data"]

    def close(self) -> None:
        self.http.close()


def png(width: int = 160, height: int = 120, pad_to: int = 0) -> bytes:
    """A fresh PNG (noise, so no two are alike), padded after its end to ``pad_to`` bytes."""
    image = (pyvips.Image.gaussnoise(width, height) + uuid.uuid4().int % 50).cast("uchar")
    data: bytes = image.pngsave_buffer(compression=1)
    if pad_to > len(data):
        data += os.urandom(pad_to - len(data))
    return data


def picture(width: int, height: int, seed: int) -> bytes:
    """A colourful gradient PNG (for screenshots a person looks at), different per ``seed``."""
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    red = (x * (255 / width) + seed * 40) % 256
    green = (y * (255 / height) + seed * 70) % 256
    blue = ((x + y) * (128 / (width + height)) + 90 + seed * 25) % 256
    image = red.bandjoin([green, blue]).cast("uchar").copy(interpretation="srgb")
    data: bytes = image.pngsave_buffer()
    return data


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The critical and serious accessibility violations axe-core finds on the page. The
    script is evaluated over the DevTools protocol, which the page's CSP does not govern."""
    page.evaluate(AXE)
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['critical', 'serious'].includes(v.impact))"
        ".map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return found


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))
