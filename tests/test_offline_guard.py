"""The SSRF guard: offline downloads, their redirects and their callbacks reach only public
addresses and what OPENPAN_FETCH_ALLOW opens, judged on the address actually connected to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import OFFLINE_ENV, Api, Server, make_server
from offline_kit import (
    DISK_CREATE,
    OSS_CREATE,
    Origin,
    Receiver,
    failed,
    origin_at,
    submit,
    succeeded,
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that may reach 127.0.0.1 (the test origins) and nothing else that is local."""
    srv = make_server(
        tmp_path_factory.mktemp("guarded"), **{**OFFLINE_ENV, "OPENPAN_FETCH_ALLOW": "127.0.0.1/32"}
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(guarded: Server) -> Iterator[Api]:
    api = guarded.client(guarded.take_user())
    yield api
    api.close()


@pytest.fixture(scope="module")
def inside() -> Iterator[Origin]:
    """An origin on 127.0.0.2: loopback, and not on the allowlist. It must never be reached."""
    with origin_at("127.0.0.2") as running:
        running.file("/secret", b"internal data")
        yield running


REFUSED = [
    ("127.0.0.2", "loopback"),
    ("127.255.255.254", "loopback"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.2]", "loopback"),
    ("[::ffff:7f00:2]", "loopback"),
    ("[2002:7f00:2::1]", "loopback"),  # 6to4 of 127.0.0.2
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("[64:ff9b::a00:1]", "private"),  # NAT64 of 10.0.0.1
    ("[fc00::1]", "unique local"),
    ("[fd12:3456::1]", "unique local"),
    ("169.254.169.254", "metadata"),
    ("[fd00:ec2::254]", "metadata"),
    ("169.254.10.1", "link-local"),
    ("[fe80::1]", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.100.100.200", "carrier-grade NAT"),  # a cloud's metadata service lives there
    ("224.0.0.1", "multicast"),
    ("[ff02::1]", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("[::]", "unspecified"),
    ("240.0.0.1", "reserved"),
]


@pytest.mark.parametrize(("host", "kind"), REFUSED)
def test_literal_internal_addresses_are_refused_at_creation(
    client: Api, host: str, kind: str
) -> None:
    for path, extra in ((DISK_CREATE, {}), (OSS_CREATE, {"fileName": "a.png"})):
        envelope = client.post(path, {"url": f"http://{host}:8080/x", **extra})
        assert envelope["code"] == 1 and envelope["message"].startswith("url"), envelope
        assert kind in envelope["message"], envelope
        envelope = client.post(
            path, {"url": "http://example.com/x.png", "callBackUrl": f"https://{host}/hook"}
        )
        assert envelope["code"] == 1 and envelope["message"].startswith("callBackUrl"), envelope


@pytest.mark.parametrize("host", ["127.2", "2130706434", "0x7f000002"])
def test_disguised_addresses_are_refused_at_submit(client: Api, inside: Origin, host: str) -> None:
    """Every form the resolver reads as an address is judged as that address, at once."""
    answer = client.post(DISK_CREATE, {"url": f"http://{host}:{inside.port}/secret"})
    assert answer["code"] == 1 and answer["message"].startswith("url"), answer
    assert "loopback" in answer["message"] and "127.0.0.2" in answer["message"], answer
    assert inside.requests("/secret") == []


def test_a_redirect_into_an_internal_address_is_refused(client: Api, inside: Origin) -> None:
    with origin_at() as outside:
        for target in (inside.url("/secret"), f"http://2130706434:{inside.port}/secret"):
            url = outside.redirect(f"/jump{len(outside.routes)}", target)
            state = failed(client, submit(client, url))
            assert "loopback" in state["failReason"], state
        ok = outside.file("/fine.bin", b"public enough")
        succeeded(client, submit(client, outside.redirect("/jump-ok", ok)))
    assert inside.requests("/secret") == []


def test_a_callback_to_an_internal_address_is_not_sent(client: Api, inside: Origin) -> None:
    hook = Receiver()
    hook.host = "127.0.0.2"
    hook.start()
    try:
        with origin_at() as outside:
            url = outside.file("/data.bin", b"data")
            answer = client.post(
                DISK_CREATE, {"url": url, "callBackUrl": f"http://2130706434:{hook.port}/hook"}
            )
            assert answer["code"] == 1 and answer["message"].startswith("callBackUrl"), answer
        with pytest.raises(AssertionError):
            hook.wait_for(1, timeout=2)
    finally:
        hook.stop()


def test_the_allowlist_opens_a_host_by_name(tmp_path: Path) -> None:
    srv = make_server(tmp_path, **{**OFFLINE_ENV, "OPENPAN_FETCH_ALLOW": "localhost"})
    srv.start()
    api = srv.client(srv.take_user())
    try:
        with origin_at() as origin:
            data = os.urandom(5_000)
            origin.file("/f.bin", data)
            succeeded(api, submit(api, f"http://localhost:{origin.port}/f.bin"))
            refused = api.post(DISK_CREATE, {"url": origin.url("/f.bin")})
            assert refused["code"] == 1 and "loopback" in refused["message"], refused
            # The same address by another name is not the allowed host.
            other = api.post(DISK_CREATE, {"url": f"http://127.1:{origin.port}/f.bin"})
            assert other["code"] == 1 and "loopback" in other["message"], other
            assert len(origin.requests("/f.bin")) == 1
    finally:
        api.close()
        srv.stop()
