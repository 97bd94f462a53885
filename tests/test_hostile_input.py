"""What a hostile or clumsy client sends: bodies over the limit (answered, not reset), numeric
host forms of internal addresses (refused at submit), JSON that is not an object, and the
message a token of a reset secret gets."""

from __future__ import annotations

import hashlib
import http.client
import json
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import Api, MiB, Server
from terminal import run_on_terminal


def raw_request(
    server: Server, method: str, target: str, body: bytes, headers: dict
) -> tuple[int, dict, bytes]:
    """One request as ``urllib``/``requests`` send it: the whole body, then the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        connection.request(method, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_a_10_mb_json_body_is_answered_not_reset(api: Api, server: Server) -> None:
    body = json.dumps({"filename": "a.png", "pad": "x" * 10_000_000}).encode()
    headers = {**api.headers, "Content-Type": "application/json"}
    status, _, answer = raw_request(server, "POST", "/upload/v1/oss/file/create", body, headers)
    envelope = json.loads(answer)
    assert status == 200 and envelope["code"] != 0 and "请求体过大" in envelope["message"]
    # The connection was read to its end: the same client goes on (keep-alive) unharmed.
    with httpx.Client(base_url=server.url, headers=api.headers, timeout=60) as client:
        first = client.post(
            "/upload/v1/oss/file/create", content=body, headers={"Content-Type": "application/json"}
        )
        assert "请求体过大" in first.json()["message"]
        assert client.post("/api/v1/oss/file/list", json={}).json()["code"] == 0


def test_a_slice_larger_than_its_size_is_answered_not_reset(api: Api, server: Server) -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(MiB)
    created = api.ok(
        "POST",
        "/upload/v1/oss/file/create",
        {
            "parentFileID": "",
            "filename": "s.png",
            "etag": hashlib.md5(data).hexdigest(),
            "size": len(data),
            "type": 1,
        },
    )
    url = api.ok(
        "POST",
        "/upload/v1/oss/file/get_upload_url",
        {"preuploadID": created["preuploadID"], "sliceNo": 1},
    )["presignedURL"]
    parts = urlsplit(url)
    target = parts.path + "?" + parts.query
    # Declared right, sent too long: refused mid-body; and declared wrong: refused unread.
    status, _, answer = raw_request(server, "PUT", target, bytes(5 * MiB), {})
    assert status == 400 and "分片大小错误" in json.loads(answer)["message"]
    status, _, answer = raw_request(
        server, "PUT", target, bytes(3 * MiB), {"Content-Length": str(3 * MiB)}
    )
    assert status == 400 and "分片大小错误" in json.loads(answer)["message"]
    # The right slice still goes in afterwards.
    assert httpx.put(url, content=data[:MiB]).status_code == 200


def test_a_multipart_body_over_the_limit_is_answered_in_both_languages(
    api: Api, server: Server
) -> None:
    """A V2 slice form larger than a slice (1 MiB here): refused mid-body, heard, bilingual."""
    files = {"slice": ("s.bin", bytes(3 * MiB), "application/octet-stream")}
    fields = {"preuploadID": "x", "sliceNo": "1", "sliceMD5": "0" * 32}
    with httpx.Client(base_url=server.url, headers=api.headers, timeout=60) as client:
        answer = client.post("/upload/v2/file/slice", data=fields, files=files).json()
        assert answer["code"] != 0 and "请求体过大" in answer["message"], answer
        assert "too large" in answer["message"]
        assert client.post("/api/v1/oss/file/list", json={}).json()["code"] == 0


@pytest.mark.parametrize(
    "host",
    [
        "10.1",
        "167772161",
        "0xa000001",
        "012.0.0.1",
        "0300.0250.0.1",
        "2852039166",
        "0xa9.0xfe.0xa9.0xfe",
        "100.64.1",
    ],
)
def test_numeric_forms_of_internal_addresses_are_refused_at_submit(api: Api, host: str) -> None:
    for path, body in (
        ("/api/v1/offline/download", {"url": f"http://{host}/a.png"}),
        ("/api/v1/oss/offline/download", {"url": f"http://{host}/a.png", "type": 1}),
    ):
        answer = api.post(path, body)
        assert (
            answer["code"] != 0 and "url" in answer["message"] and "不允许访问" in answer["message"]
        ), answer


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'"str"', "application/json"),
        (b"[1, 2]", "application/json"),
        (b"5", "application/json"),
        (b"null", "application/json"),
        (b'{"a": 1}\x00', "application/json"),
        (b"a=1\x00", "application/x-www-form-urlencoded"),
        (b'"str"', "text/plain"),
    ],
)
def test_a_body_that_is_not_an_object_is_refused_with_code_1(
    api: Api, body: bytes, content_type: str
) -> None:
    answer = api.call(
        "POST", "/api/v1/oss/file/list", content=body, headers={"Content-Type": content_type}
    )
    assert answer["code"] == 1 and "请求体" in answer["message"], answer


def test_a_token_of_a_reset_secret_says_it_was_revoked(server: Server) -> None:
    creds = server.take_user()
    body = {"clientID": creds["client_id"], "clientSecret": creds["client_secret"]}
    platform = {"Platform": "open_platform"}
    tokens = [
        httpx.post(server.url + "/api/v1/access_token", json=body, headers=platform).json()["data"][
            "accessToken"
        ]
        for _ in range(4)
    ]

    def info(token: str) -> dict:
        headers = {"Authorization": f"Bearer {token}", **platform}
        return httpx.get(server.url + "/api/v1/user/info", headers=headers).json()

    # The oldest of four is retired by the fourth login: the real service's message.
    assert "exceeded the limit" in info(tokens[0])["message"]
    done = server.cli("user", "reset-secret", creds["name"], "--json")
    assert done.returncode == 0, done.stderr
    revoked = info(tokens[3])
    assert (
        revoked["code"] == 401 and "revoked" in revoked["message"] and "重置" in revoked["message"]
    )


def test_instant_upload_can_be_limited_to_the_users_own_files(fresh_server: Server) -> None:
    fresh_server.env["OPENPAN_INSTANT_UPLOAD"] = "own"
    fresh_server.start()
    alice, bob = (fresh_server.client(fresh_server.take_user()) for _ in range(2))
    data = b"\x89PNG\r\n\x1a\n" + bytes(5000)
    alice.oss_upload(data, "mine.png")

    def create(api: Api, name: str) -> dict:
        body = {
            "parentFileID": "",
            "filename": name,
            "etag": hashlib.md5(data).hexdigest(),
            "size": len(data),
            "type": 1,
        }
        created: dict = api.ok("POST", "/upload/v1/oss/file/create", body)
        return created

    # Bob must send the bytes (he learns nothing of Alice's file); Alice's second copy is instant.
    assert create(bob, "guess.png")["reuse"] is False
    assert create(alice, "again.png")["reuse"] is True
    # Once Bob has sent them, the bytes are stored once and his next copy is instant too.
    bob.oss_upload(data, "sent.png")
    assert create(bob, "again.png")["reuse"] is True
    alice.close()
    bob.close()


def test_by_default_instant_upload_works_across_users_as_on_the_real_service(
    server: Server,
) -> None:
    alice, bob = (server.client(server.take_user()) for _ in range(2))
    data = b"\x89PNG\r\n\x1a\n" + bytes(7000) + b"default"
    alice.oss_upload(data, "mine.png")
    body = {
        "parentFileID": "",
        "filename": "b.png",
        "etag": hashlib.md5(data).hexdigest(),
        "size": len(data),
        "type": 1,
    }
    assert bob.ok("POST", "/upload/v1/oss/file/create", body)["reuse"] is True
    alice.close()
    bob.close()


def test_the_cli_prints_each_upload_link_whole_on_a_terminal(server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On a terminal the bars redraw; the links are printed after them, one whole line each."""
    import os
    import re
    import sys

    creds = server.take_user()
    files = []
    for number in range(2):
        path = tmp_path / f"pic{number}.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(3 * MiB))
        files.append(str(path))
    env = {
        **server.env,
        "OPENPAN_BASE_URL": server.url,
        "OPENPAN_CLIENT_ID": creds["client_id"],
        "OPENPAN_CLIENT_SECRET": creds["client_secret"],
        "OPENPAN_CLI_CONFIG": str(tmp_path / "cli.ini"),
        "COLUMNS": "80",
    }
    command = [sys.executable, "-m", "openpan", "upload", *files, "--to", "/t"]
    status, seen = run_on_terminal(command, env)
    assert status == 0, seen
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    lines = [line.strip() for line in re.split(r"[\r\n]+", text)]
    link = re.compile(rf".*pic\d\.png → {re.escape(server.url)}/\d+/[0-9a-z]+\.png")
    whole = [line for line in lines if link.fullmatch(line)]
    assert len(whole) == 2, text


def _disk_used(api: Api) -> int:
    return int(api.ok("GET", "/api/v1/user/info")["spaceUsed"])


def test_parallel_uploads_cannot_overrun_the_quota(fresh_server: Server) -> None:
    """1,000,000 bytes of quota; 20 one-step uploads of 100,000 bytes at once, then 30 V1
    uploads at once: never more than the quota used (both databases: the suite's tiers)."""
    from concurrent.futures import ThreadPoolExecutor

    fresh_server.env["OPENPAN_DISK_QUOTA"] = "1000000"
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())

    def single(number: int) -> int:
        data = number.to_bytes(4, "big") + bytes(99_996)
        form = {
            "parentFileID": "0",
            "filename": f"s{number}.bin",
            "etag": hashlib.md5(data).hexdigest(),
            "size": str(len(data)),
        }
        with httpx.Client(base_url=fresh_server.url, headers=api.headers, timeout=60) as http:
            return int(
                http.post(
                    "/upload/v2/file/single/create", data=form, files={"file": ("f", data)}
                ).json()["code"]
            )

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(single, range(20)))
    assert codes.count(0) == 10 and _disk_used(api) == 1_000_000, codes

    # Make room, then 30 V1 uploads at once: the create of each reserves its size.
    listed = api.ok("GET", "/api/v2/file/list", {"parentFileId": 0, "limit": 100})["fileList"]
    ids = [e["fileId"] for e in listed][:10]
    api.ok("POST", "/api/v1/file/trash", {"fileIDs": ids})
    api.ok("POST", "/api/v1/file/delete", {"fileIDs": ids})

    def v1(number: int) -> int:
        data = (1000 + number).to_bytes(4, "big") + bytes(99_996)
        body = {
            "parentFileID": 0,
            "filename": f"v{number}.bin",
            "etag": hashlib.md5(data).hexdigest(),
            "size": len(data),
        }
        with httpx.Client(base_url=fresh_server.url, headers=api.headers, timeout=60) as http:
            created = http.post("/upload/v1/file/create", json=body).json()
            if created["code"] != 0:
                return int(created["code"])
            pre = created["data"]["preuploadID"]
            url = http.post(
                "/upload/v1/file/get_upload_url", json={"preuploadID": pre, "sliceNo": 1}
            ).json()
            assert httpx.put(url["data"]["presignedURL"], content=data).status_code == 200
            done = http.post("/upload/v1/file/upload_complete", json={"preuploadID": pre}).json()
            return int(done["code"])

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(v1, range(30)))
    assert codes.count(0) == 10, codes
    assert _disk_used(api) == 1_000_000
    api.close()
