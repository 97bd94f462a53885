"""Public direct links of image-bed files, through real HTTP: headers, validators, ranges, HEAD,
404s, custom domains, hotlink protection, signed links, and totalTraffic."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Api, MiB, Server, jpeg_bytes

DETAIL = "/api/v1/oss/file/detail"
LIST = "/api/v1/oss/file/list"
SMALL = 100 * 1024
LARGE = 2 * MiB + 12345  # above the in-memory limit: streamed from the file, several windows


@pytest.fixture(scope="module")
def small(server: Server) -> Iterator[tuple[Api, str, bytes]]:
    """A user with one 100 KB image: (client, fileID, bytes)."""
    client = server.client(server.take_user())
    data = jpeg_bytes(SMALL)
    yield client, client.oss_upload(data, "small.jpg"), data
    client.close()


@pytest.fixture(scope="module")
def large(server: Server) -> Iterator[tuple[Api, str, bytes]]:
    """A user with one image large enough to be streamed from disk."""
    client = server.client(server.take_user())
    data = jpeg_bytes(LARGE)
    yield client, client.oss_upload(data, "large.jpg"), data
    client.close()


def detail(api: Api, file_id: str) -> dict[str, Any]:
    data: dict[str, Any] = api.ok("GET", DETAIL, {"fileID": file_id})
    return data


def link(api: Api, file_id: str) -> str:
    url: str = detail(api, file_id)["downloadURL"]
    return url


def fetch(url: str, method: str = "GET", **headers: str) -> httpx.Response:
    return httpx.request(method, url, headers=headers, timeout=30)


def set_options(server: Server, options: dict[str, dict[str, Any]]) -> None:
    """Set users' access options (``users.update_user`` keywords by user name) in one process;
    ``openpan user set`` does the same one user at a time."""
    script = """
import asyncio, json, sys
from openpan.db.engine import Database
from openpan.services import users
from openpan.settings import load_settings

async def main() -> None:
    db = Database(load_settings(data_dir=sys.argv[1]).effective_database_url)
    try:
        for name, options in json.loads(sys.argv[2]).items():
            await users.update_user(db, name, **options)
    finally:
        await db.dispose()

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(server.data_dir), json.dumps(options)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def eventually(check: Any, seconds: float = 15.0) -> Any:
    """Poll ``check()`` until it returns something truthy (settings changed elsewhere reach
    the server's link cache within its TTL)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def assert_plain(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text[:200])
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "Traceback" not in response.text and len(response.content) < 100


# Headers, validators, HEAD ------------------------------------------------------------------


@pytest.mark.parametrize("which", ["small", "large"])
def test_get_answers_bytes_with_type_length_validators_and_caching(
    which: str, request: pytest.FixtureRequest
) -> None:
    api, file_id, data = request.getfixturevalue(which)
    response = fetch(link(api, file_id))
    assert response.status_code == 200
    assert response.content == data
    headers = response.headers
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-length"] == str(len(data))
    assert headers["etag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert parsedate_to_datetime(headers["last-modified"]).tzinfo is not None
    assert headers["accept-ranges"] == "bytes"
    cache = headers["cache-control"]
    assert "public" in cache and "immutable" in cache and "max-age=31536000" in cache
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-range" not in headers


@pytest.mark.parametrize("which", ["small", "large"])
def test_head_has_the_headers_of_get_and_no_body(
    which: str, request: pytest.FixtureRequest
) -> None:
    api, file_id, data = request.getfixturevalue(which)
    url = link(api, file_id)
    got, head = fetch(url), fetch(url, "HEAD")
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert head.headers[name] == got.headers[name]
    assert head.headers["content-length"] == str(len(data))


def test_if_none_match_answers_304_without_body(small: tuple[Api, str, bytes]) -> None:
    api, file_id, data = small
    url = link(api, file_id)
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    for value in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        for method in ("GET", "HEAD"):
            response = fetch(url, method, **{"If-None-Match": value})
            assert response.status_code == 304, value
            assert response.content == b""
            assert response.headers["etag"] == etag
            assert "immutable" in response.headers["cache-control"]
    for value in ('"0123"', "", "garbage", etag[1:-1]):
        response = fetch(url, **{"If-None-Match": value})
        assert response.status_code == 200 and response.content == data, value


def test_if_modified_since_answers_304_when_not_modified(small: tuple[Api, str, bytes]) -> None:
    api, file_id, data = small
    url = link(api, file_id)
    modified = fetch(url, "HEAD").headers["last-modified"]
    moment = parsedate_to_datetime(modified)
    later = format_datetime(moment.replace(year=moment.year + 1), usegmt=True)
    earlier = format_datetime(moment.replace(year=moment.year - 1), usegmt=True)
    for value in (modified, later):
        response = fetch(url, **{"If-Modified-Since": value})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["last-modified"] == modified
    for value in (earlier, "yesterday", "", "Sun, 99 Foo 1994 99:99:99 GMT", "0" * 200):
        response = fetch(url, **{"If-Modified-Since": value})
        assert response.status_code == 200 and response.content == data, value
    # If-None-Match decides when both are sent.
    response = fetch(url, **{"If-Modified-Since": modified, "If-None-Match": '"stale"'})
    assert response.status_code == 200


# Ranges --------------------------------------------------------------------------------------


def _ranges(size: int) -> list[tuple[str, int, int]]:
    """(Range header, first byte, last byte) of satisfiable single ranges at the edges."""
    window = MiB  # the streaming window: ranges across its edge read two mappings
    cases = [
        ("bytes=0-0", 0, 0),
        ("bytes=0-", 0, size - 1),
        (f"bytes={size - 1}-{size - 1}", size - 1, size - 1),
        (f"bytes={size - 1}-", size - 1, size - 1),
        ("bytes=-1", size - 1, size - 1),
        ("bytes=-100", size - 100, size - 1),
        (f"bytes=-{size}", 0, size - 1),
        (f"bytes=-{size * 3}", 0, size - 1),
        (f"bytes=10-{size * 5}", 10, size - 1),
        ("bytes=4095-4097", 4095, 4097),
        ("BYTES = 5-9", 5, 9),
    ]
    if size > window + 10:
        cases.append((f"bytes={window - 3}-{window + 3}", window - 3, window + 3))
        cases.append((f"bytes={window}-", window, size - 1))
    return cases


@pytest.mark.parametrize("which", ["small", "large"])
def test_single_ranges_at_the_edges_answer_206(which: str, request: pytest.FixtureRequest) -> None:
    api, file_id, data = request.getfixturevalue(which)
    url = link(api, file_id)
    size = len(data)
    for header, first, last in _ranges(size):
        response = fetch(url, Range=header)
        assert response.status_code == 206, header
        assert response.content == data[first : last + 1], header
        assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", header
        assert response.headers["content-length"] == str(last - first + 1)
        head = fetch(url, "HEAD", Range=header)
        assert head.status_code == 206 and head.content == b""
        assert head.headers["content-range"] == response.headers["content-range"]


@pytest.mark.parametrize("which", ["small", "large"])
def test_unsatisfiable_ranges_answer_416_with_the_size(
    which: str, request: pytest.FixtureRequest
) -> None:
    api, file_id, data = request.getfixturevalue(which)
    url = link(api, file_id)
    size = len(data)
    for header in (f"bytes={size}-", f"bytes={size}-{size + 10}", f"bytes={size * 2}-", "bytes=-0"):
        response = fetch(url, Range=header)
        assert response.status_code == 416, header
        assert response.headers["content-range"] == f"bytes */{size}"
        assert len(response.content) < 100 and data[:20] not in response.content


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,4-5",  # several ranges: the whole file (documented)
        "bytes=5-2",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=1-x",
        "items=0-1",
        "0-1",
        "bytes=０-1",
        "bytes=99999999999999999999999-",
        "bytes=" + "1" * 5000 + "-",
    ],
)
def test_malformed_or_multiple_ranges_answer_the_whole_file(
    header: str, small: tuple[Api, str, bytes]
) -> None:
    api, file_id, data = small
    response = httpx.get(link(api, file_id), headers=[(b"Range", header.encode())], timeout=30)
    assert response.status_code == 200
    assert response.content == data
    assert "content-range" not in response.headers


def test_if_range_applies_the_range_only_to_the_same_bytes(small: tuple[Api, str, bytes]) -> None:
    api, file_id, data = small
    url = link(api, file_id)
    head = fetch(url, "HEAD").headers
    for current in (head["etag"], head["last-modified"]):
        response = fetch(url, Range="bytes=0-9", **{"If-Range": current})
        assert response.status_code == 206 and response.content == data[:10]
    for stale in ('"stale"', f"W/{head['etag']}", "Sun, 06 Nov 1994 08:49:37 GMT", "junk"):
        response = fetch(url, Range="bytes=0-9", **{"If-Range": stale})
        assert response.status_code == 200 and response.content == data, stale


# Not found -----------------------------------------------------------------------------------


def test_unknown_foreign_and_malformed_links_are_a_plain_404(
    small: tuple[Api, str, bytes], other_api: Api
) -> None:
    api, file_id, _ = small
    url = link(api, file_id)
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}"
    uid, name = parts.path.strip("/").split("/")
    other_uid = urlsplit(link(other_api, other_api.oss_upload(jpeg_bytes(1000)))).path.split("/")[1]
    wrong = [
        f"/{uid}/{'0' * len(file_id)}.jpg",  # no such file
        f"/{other_uid}/{name}",  # somebody else's uid with this file
        f"/{uid}/{file_id}.png",  # wrong extension
        f"/{uid}/{file_id}",  # no extension
        f"/{uid}/{file_id}.jpg.jpg",
        f"/{int(uid) + 10**9}/{name}",  # no such user
        f"/0/{name}",
        f"/{'9' * 18}/{name}",
        f"/{'9' * 30}/{name}",
        f"/{uid}/{'a' * 5000}.jpg",
        f"/{uid}/{name}/extra",
        f"/{uid}/%00.jpg",
        f"/{uid}/..%2f..%2fetc%2fpasswd",
        f"/{uid}/{file_id[:-1]}%C3%A9.jpg",
        "/x/y",
    ]
    for path in wrong:
        response = httpx.get(base + path, timeout=30)
        assert response.status_code == 404, path
        if path.count("/") == 2 and "%2f" not in path:  # shaped like a link
            assert_plain(response, 404)
        assert "Traceback" not in response.text
    assert fetch(url, "HEAD").status_code == 200


def test_deleted_file_link_is_404_at_once(api: Api) -> None:
    data = jpeg_bytes(5000)
    file_id = api.oss_upload(data, "gone.jpg")
    url = link(api, file_id)
    assert fetch(url).content == data  # now in the server's caches
    api.ok("POST", "/api/v1/oss/file/delete", {"fileIDs": [file_id]})
    assert_plain(fetch(url), 404)
    assert_plain(fetch(url, "HEAD"), 404)


def test_moved_file_keeps_its_link(api: Api) -> None:
    data = jpeg_bytes(3000)
    file_id = api.oss_upload(data, "moving.jpg")
    url = link(api, file_id)
    folder = api.ok("POST", "/upload/v1/oss/file/mkdir", {"name": "album", "parentID": ""})
    api.ok(
        "POST",
        "/api/v1/oss/file/move",
        {"fileIDs": [file_id], "toParentFileID": folder["list"][0]["dirID"]},
    )
    assert link(api, file_id) == url
    assert fetch(url).content == data


def test_other_methods_on_a_link_are_not_served(small: tuple[Api, str, bytes]) -> None:
    api, file_id, data = small
    url = link(api, file_id)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        response = httpx.request(method, url, content=b"x", timeout=30)
        assert response.status_code not in (200, 500), method
        assert data[:50] not in response.content
    assert fetch(url).content == data  # and the file is untouched


def test_request_without_host_header_is_served(small: tuple[Api, str, bytes]) -> None:
    api, file_id, data = small
    parts = urlsplit(link(api, file_id))
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(f"GET {parts.path} HTTP/1.0\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == data


def test_svg_is_served_as_svg_in_a_sandbox(api: Api) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
    url = link(api, api.oss_upload(svg, "evil.svg"))
    response = fetch(url)
    assert response.status_code == 200 and response.content == svg
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["x-content-type-options"] == "nosniff"
    policy = response.headers["content-security-policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy
    assert "script-src" not in policy


# Access options ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def configured(server: Server) -> Iterator[dict[str, tuple[Api, str, str]]]:
    """Users with access options, each with one image: name → (client, fileID, link)."""
    options = {
        "domain": {"custom_domain": f"img-{time.time_ns()}.example.test"},
        "strict": {
            "referer_allow": "good.example, *.friends.example",
            "referer_allow_empty": False,
        },
        "lenient": {"referer_allow": "https://good.example/page", "referer_allow_empty": True},
        "signed": {"link_sign_secret": "s3cret-key"},
    }
    made: dict[str, tuple[Api, str, str]] = {}
    clients = {role: server.client(server.take_user()) for role in options}
    set_options(server, {clients[role].creds["name"]: opts for role, opts in options.items()})
    for role, client in clients.items():
        file_id = client.oss_upload(jpeg_bytes(2000), f"{role}.jpg")
        made[role] = (client, file_id, link(client, file_id))
    yield made
    for client in clients.values():
        client.close()


def test_custom_domain_serves_its_users_links_only(
    configured: dict[str, tuple[Api, str, str]], small: tuple[Api, str, bytes]
) -> None:
    api, file_id, url = configured["domain"]
    info = detail(api, file_id)
    domain = urlsplit(info["userSelfURL"]).netloc
    assert domain.startswith("img-") and urlsplit(info["userSelfURL"]).path == urlsplit(url).path
    other_url = link(small[0], small[1])
    # Another user's link under this user's domain: not found, once the server knows the domain.
    assert eventually(lambda: fetch(other_url, Host=domain).status_code == 404)
    assert_plain(fetch(other_url, Host=domain), 404)
    assert_plain(fetch(other_url, "HEAD", Host=domain.upper()), 404)
    assert fetch(other_url, Host=f"{domain}:8080").status_code == 404
    for host in (domain, domain.upper(), f"{domain}:443"):
        response = fetch(url, Host=host)
        assert response.status_code == 200, host
        assert response.headers["etag"] == f'"{info["etag"]}"'
    # On the server's own host every user's links keep working.
    assert fetch(url).status_code == 200
    assert fetch(other_url).status_code == 200
    for host in ("x" * 5000, "[::1]:80", "", "a b"):
        response = httpx.get(other_url, headers=[(b"Host", host.encode())], timeout=30)
        assert response.status_code in (200, 400), host
    # A domain serves one user: another user cannot take it, however it is written.
    done = small[0].server.cli(
        "user", "set", small[0].creds["name"], "--domain", f"https://{domain.upper()}/"
    )
    assert done.returncode != 0 and "already" in done.stdout + done.stderr


def test_hotlink_protection_without_empty_referer(
    configured: dict[str, tuple[Api, str, str]],
) -> None:
    _, _, url = configured["strict"]
    for referer in (
        "https://good.example/a.html",
        "http://GOOD.example:8080/",
        "https://x.friends.example/",
    ):
        assert fetch(url, Referer=referer).status_code == 200, referer
    for referer in (
        "https://evil.example/",
        "https://good.example.evil.example/",
        "https://friends.example/",
        "https://notgood.example/",
        "good.example",
        "::::",
        "http://[bad",
        "\u00e9",
    ):
        response = httpx.get(url, headers=[(b"Referer", referer.encode())], timeout=30)
        assert_plain(response, 403)
    assert_plain(fetch(url), 403)  # no Referer
    assert_plain(fetch(url, Referer=""), 403)
    assert_plain(fetch(url, "HEAD"), 403)


def test_hotlink_protection_with_empty_referer(
    configured: dict[str, tuple[Api, str, str]],
) -> None:
    _, _, url = configured["lenient"]
    assert fetch(url).status_code == 200
    assert fetch(url, Referer="").status_code == 200
    assert fetch(url, Referer="https://good.example/x").status_code == 200
    assert_plain(fetch(url, Referer="https://evil.example/"), 403)


def _auth_key(path: str, secret: str, expires: int, rand: str = "abc123", uid: str = "0") -> str:
    digest = hashlib.md5(f"{path}-{expires}-{rand}-{uid}-{secret}".encode()).hexdigest()
    return f"{expires}-{rand}-{uid}-{digest}"


def test_signed_links(configured: dict[str, tuple[Api, str, str]]) -> None:
    _, file_id, url = configured["signed"]
    path = urlsplit(url).path
    uid = path.split("/")[1]
    future = int(time.time()) + 600
    good = _auth_key(path, "s3cret-key", future, "f00d", uid)
    response = httpx.get(url, params={"auth_key": good}, timeout=30)
    assert response.status_code == 200 and len(response.content) == 2000
    assert httpx.head(url, params={"auth_key": good}, timeout=30).status_code == 200
    # Range and validators still work on a signed link.
    ranged = httpx.get(url, params={"auth_key": good}, headers={"Range": "bytes=0-9"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == response.content[:10]
    other_path = "/" + uid + "/" + "0" * len(file_id) + ".jpg"
    refused = [
        None,  # no key
        "",
        _auth_key(path, "s3cret-key", int(time.time()) - 5, "f00d", uid),  # expired
        _auth_key(path, "wrong-secret", future, "f00d", uid),  # forged
        _auth_key(other_path, "s3cret-key", future, "f00d", uid),  # another file's key
        good[:-1] + ("0" if good[-1] != "0" else "1"),  # tampered digest
        good.replace(f"{future}-", f"{future + 1000}-", 1),  # extended expiry
        "-".join(good.split("-")[:3]),  # three parts
        good + "-x",
        "abc-def-0-" + "0" * 32,
        "9" * 40 + "-a-0-" + "0" * 32,
    ]
    for key in refused:
        params = {} if key is None else {"auth_key": key}
        response = httpx.get(url, params=params, timeout=30)
        assert_plain(response, 403)
    # Two auth_key values: refused rather than guessing which one counts.
    response = httpx.get(url + f"?auth_key={good}&auth_key={good}", timeout=30)
    assert_plain(response, 403)


def test_signed_link_expires_with_the_server_clock(fresh_server: Server) -> None:
    fresh_server.env["OPENPAN_CLOCK_OFFSET"] = "3600"  # the server lives an hour ahead
    fresh_server.start()
    creds = fresh_server.take_user()
    done = fresh_server.cli("user", "set", creds["name"], "--link-secret", "k3y")
    assert done.returncode == 0, done.stdout + done.stderr
    client = fresh_server.client(creds)
    try:
        url = link(client, client.oss_upload(jpeg_bytes(1000), "clock.jpg"))
        path = urlsplit(url).path
        soon = int(time.time()) + 600  # valid now, expired by the server's clock
        later = int(time.time()) + 7200
        assert_plain(httpx.get(url, params={"auth_key": _auth_key(path, "k3y", soon)}), 403)
        ok = httpx.get(url, params={"auth_key": _auth_key(path, "k3y", later)}, timeout=30)
        assert ok.status_code == 200
    finally:
        client.close()


def test_cli_sets_and_clears_access_options(fresh_server: Server) -> None:
    fresh_server.env["OPENPAN_LINK_CACHE_TTL"] = "0"
    fresh_server.start()
    creds = fresh_server.take_user()
    client = fresh_server.client(creds)
    try:
        url = link(client, client.oss_upload(jpeg_bytes(1000), "cli.jpg"))
        assert fetch(url).status_code == 200
        done = fresh_server.cli(
            "user", "set", creds["name"], "--referer-allow", "ok.example", "--deny-empty-referer"
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert fetch(url).status_code == 403
        assert fetch(url, Referer="http://ok.example/").status_code == 200
        done = fresh_server.cli("user", "set", creds["name"], "--referer-allow", "")
        assert done.returncode == 0, done.stdout + done.stderr
        assert fetch(url).status_code == 200
    finally:
        client.close()


# Traffic -------------------------------------------------------------------------------------


def wait_traffic(api: Api, file_id: str, expected: int) -> int:
    """totalTraffic once it reached ``expected`` (or what it is after a generous wait)."""
    result = eventually(lambda: detail(api, file_id)["totalTraffic"] >= expected, 15)
    del result
    value: int = detail(api, file_id)["totalTraffic"]
    return value


def test_traffic_counts_the_bytes_sent_for_full_and_partial_answers(api: Api) -> None:
    small_data, large_data = jpeg_bytes(SMALL), jpeg_bytes(LARGE)
    small_id = api.oss_upload(small_data, "t-small.jpg")
    large_id = api.oss_upload(large_data, "t-large.jpg")
    assert detail(api, small_id)["totalTraffic"] == 0
    small_url, large_url = link(api, small_id), link(api, large_id)
    etag = f'"{hashlib.md5(small_data).hexdigest()}"'
    expected_small = 0
    for response in (
        fetch(small_url),  # whole file
        fetch(small_url),
        fetch(small_url, Range="bytes=0-99"),
        fetch(small_url, Range="bytes=-1"),
        fetch(small_url, "HEAD"),  # nothing below this line sends body bytes
        fetch(small_url, "HEAD", Range="bytes=0-99"),
        fetch(small_url, **{"If-None-Match": etag}),
        fetch(small_url, Range=f"bytes={SMALL}-"),
    ):
        if response.status_code in (200, 206) and response.request.method == "GET":
            expected_small += len(response.content)
    assert expected_small == 2 * SMALL + 101
    expected_large = 0
    for header in (None, f"bytes={MiB - 5}-{MiB + 4}", "bytes=-1000", f"bytes={MiB}-"):
        response = fetch(large_url, **({"Range": header} if header else {}))
        assert response.status_code in (200, 206)
        expected_large += len(response.content)
    assert expected_large == LARGE + 10 + 1000 + (LARGE - MiB)
    assert wait_traffic(api, small_id, expected_small) == expected_small
    assert wait_traffic(api, large_id, expected_large) == expected_large
    # list shows the same figure
    listed = api.ok("POST", LIST, {"limit": 100, "type": 1})["fileList"]
    by_id = {f["fileId"]: f for f in listed}
    assert by_id[small_id]["totalTraffic"] == expected_small
    assert by_id[large_id]["totalTraffic"] == expected_large


def test_traffic_of_a_client_that_leaves_midway_counts_what_went_out(api: Api) -> None:
    size = 24 * MiB
    data = jpeg_bytes(size)
    file_id = api.oss_upload(data, "leaver.jpg")
    url = link(api, file_id)
    parts = urlsplit(url)
    received = 0
    with socket.socket() as sock:
        # A small receive buffer, so the kernel cannot take the whole file off the server's hands.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.settimeout(30)
        sock.connect((parts.hostname, parts.port))
        sock.sendall(f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
        while received < MiB:
            chunk = sock.recv(65536)
            assert chunk
            received += len(chunk)
    counted = eventually(lambda: detail(api, file_id)["totalTraffic"], 15)
    assert MiB <= counted < size // 2
    # The server is fine afterwards and counts a full read exactly.
    again = fetch(url, Range="bytes=0-999")
    assert again.status_code == 206 and again.content == data[:1000]
    assert wait_traffic(api, file_id, counted + 1000) == counted + 1000


def test_traffic_is_written_at_a_clean_shutdown(fresh_server: Server) -> None:
    fresh_server.env["OPENPAN_TRAFFIC_FLUSH_INTERVAL"] = "3600"  # only the shutdown writes it
    fresh_server.start()
    client = fresh_server.client(fresh_server.take_user())
    try:
        data = jpeg_bytes(7000)
        file_id = client.oss_upload(data, "shutdown.jpg")
        url = link(client, file_id)
        assert fetch(url).content == data
        assert fetch(url, Range="bytes=0-9").status_code == 206
        assert detail(client, file_id)["totalTraffic"] == 0  # counted, not yet written
    finally:
        client.close()
    fresh_server.stop()
    fresh_server.start()
    client = fresh_server.client(client.creds)
    try:
        assert detail(client, file_id)["totalTraffic"] == 7010
    finally:
        client.close()
