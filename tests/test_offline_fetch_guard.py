"""The guarded session in process: a host name's addresses are screened before any connection,
so only an allowed address is ever connected to, whatever else the name resolves to."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from offline_kit import origin_at
from yarl import URL

from openpan.services.fetch_guard import DestinationRefused, GuardedSession


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
    """Names in ``answers`` resolve to those IPv4 addresses, in that order."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def _get(allow: str, url: str) -> tuple[int, bytes]:
    async with GuardedSession(allow, timeout=5) as session:
        response = await session.request("GET", URL(url))
        body = await response.read()
        return response.status, body


def test_only_the_allowed_address_of_a_name_is_connected_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same port on an internal and an allowed address: which one answers tells which one
    # was connected to.
    with origin_at("127.0.0.2") as inside, origin_at(port=inside.port) as outside:
        inside.file("/f", b"internal")
        outside.file("/f", b"public")
        # Listed first, the internal address would be tried first if it were not screened out.
        _fake_dns(monkeypatch, {"mixed.example": ["127.0.0.2", "127.0.0.1"]})
        url = f"http://mixed.example:{inside.port}/f"
        status, body = asyncio.run(_get("127.0.0.1/32", url))
    assert (status, body) == (200, b"public")
    assert inside.requests("/f") == []


def test_a_name_with_only_refused_addresses_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with origin_at("127.0.0.2") as inside:
        inside.file("/f", b"internal")
        _fake_dns(monkeypatch, {"inside.example": ["127.0.0.2"]})
        with pytest.raises(DestinationRefused, match=r"inside\.example \(127\.0\.0\.2\).*loopback"):
            asyncio.run(_get("127.0.0.1/32", f"http://inside.example:{inside.port}/f"))
    assert inside.requests("/f") == []
