"""Blobs on an S3-compatible object store (moto's S3 server over HTTP stands in for MinIO/AWS).

Slices go straight to the store at presigned part URLs; completing an upload joins the parts in
the store and checks the md5 of what it holds before the file appears; links are proxied or
redirected to a presigned GET.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import diskkit
import httpx
import pytest
import scaleout
from conftest import Api, Server, make_server
from scaleout import S3_PART, S3Server, s3_env

s3_server = scaleout.s3_server  # the fixture, shared with the other scale-out tests

CREATE = "/upload/v1/oss/file/create"
UPLOAD_URL = "/upload/v1/oss/file/get_upload_url"
PARTS = "/upload/v1/oss/file/list_upload_parts"
COMPLETE = "/upload/v1/oss/file/upload_complete"
RESULT = "/upload/v1/oss/file/upload_async_result"
DETAIL = "/api/v1/oss/file/detail"
DELETE = "/api/v1/oss/file/delete"
BLOBS = "blobs-root/blobs/"
UPLOADS = "blobs-root/uploads/"


def image(size: int) -> bytes:
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + os.urandom(size))[:size]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(scope="module")
def s3_bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


@pytest.fixture(scope="module")
def s3_openpan(
    s3_server: S3Server,
    s3_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Server]:
    """A server keeping its blobs in ``s3_bucket`` (5 MiB slices, sync completion ≤ 10 MiB)."""
    srv = make_server(tmp_path_factory.mktemp("s3"), **s3_env(s3_server, s3_bucket))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def s3_api(s3_openpan: Server) -> Iterator[Api]:
    client = s3_openpan.client(s3_openpan.take_user())
    yield client
    client.close()


def start(api: Api, data: bytes, name: str, etag: str | None = None) -> dict[str, Any]:
    body = {"parentFileID": "", "filename": name, "etag": etag or md5(data), "size": len(data)}
    created: dict[str, Any] = api.ok("POST", CREATE, {**body, "type": 1})
    return created


def put_slice(api: Api, pre: str, number: int, chunk: bytes, **headers: str) -> str:
    url: str = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": number})["presignedURL"]
    response = httpx.put(url, content=chunk, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.content == b""
    return url


def chunks(data: bytes, size: int = S3_PART) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def finish(api: Api, pre: str) -> str:
    done = api.ok("POST", COMPLETE, {"preuploadID": pre})
    if done["completed"]:
        return str(done["fileID"])
    assert done["async"] is True
    return api.wait_async(pre)


def upload(api: Api, data: bytes, name: str) -> str:
    created = start(api, data, name)
    if created["reuse"]:
        return str(created["fileID"])
    for number, chunk in enumerate(chunks(data), 1):
        put_slice(api, created["preuploadID"], number, chunk)
    return finish(api, created["preuploadID"])


def link(api: Api, file_id: str) -> str:
    url: str = api.ok("GET", DETAIL, {"fileID": file_id})["downloadURL"]
    return url


def test_slices_go_to_the_store_out_of_order_and_the_file_appears_after_md5_check(
    s3_api: Api,
    s3_server: S3Server,
    s3_bucket: str,
) -> None:
    data = image(2 * S3_PART + 123_457)
    created = start(s3_api, data, "big.jpg")
    pre = created["preuploadID"]
    assert created["sliceSize"] == S3_PART
    parts = chunks(data)
    # Parallel, out of order, one sent twice, with odd or no Content-Type: as clients do.
    with ThreadPoolExecutor(3) as pool:
        urls = list(pool.map(lambda n: put_slice(s3_api, pre, n, parts[n - 1]), [3, 1, 2]))
    put_slice(s3_api, pre, 2, parts[1], **{"Content-Type": "application/x-whatever"})
    for url in urls:
        assert url.startswith(s3_server.endpoint + f"/{s3_bucket}/"), url
        assert "X-Amz-Signature=" in url and "uploadId=" in url
    listed = s3_api.ok("POST", PARTS, {"preuploadID": pre})["parts"]
    assert [(p["partNumber"], p["size"], p["etag"]) for p in listed] == [
        (str(n), len(chunk), md5(chunk)) for n, chunk in enumerate(parts, 1)
    ]
    # Nothing visible before completion.
    assert s3_server.keys(s3_bucket, BLOBS) == []
    done = s3_api.ok("POST", COMPLETE, {"preuploadID": pre})
    assert done["async"] is True and done["completed"] is False  # 10.1 MiB > sync max
    file_id = s3_api.wait_async(pre)
    got = httpx.get(link(s3_api, file_id), timeout=60)
    assert got.status_code == 200 and md5(got.content) == md5(data)
    assert got.headers["content-type"] == "image/jpeg"
    # Large blobs are streamed from the store, a range included (here across two slices).
    middle = httpx.get(
        link(s3_api, file_id), headers={"Range": f"bytes={S3_PART - 10}-{S3_PART + 9}"}
    )
    assert middle.status_code == 206 and middle.content == data[S3_PART - 10 : S3_PART + 10]
    assert middle.headers["content-range"] == f"bytes {S3_PART - 10}-{S3_PART + 9}/{len(data)}"
    blobs = s3_server.keys(s3_bucket, BLOBS)
    assert len(blobs) == 1 and md5(data) in blobs[0]
    # The assembled upload was copied into place and forgotten.
    assert s3_server.keys(s3_bucket, UPLOADS) == []
    assert not [k for k in s3_server.multipart_uploads(s3_bucket) if pre in k]


def test_small_upload_completes_in_the_request(s3_api: Api) -> None:
    data = image(S3_PART + 10)
    created = start(s3_api, data, "small.jpg")
    for number, chunk in enumerate(chunks(data), 1):
        put_slice(s3_api, created["preuploadID"], number, chunk)
    done = s3_api.ok("POST", COMPLETE, {"preuploadID": created["preuploadID"]})
    assert done["completed"] is True and done["fileID"]
    assert httpx.get(link(s3_api, done["fileID"])).content == data


def test_single_slice_file_and_empty_file(s3_api: Api) -> None:
    data = image(1000)
    file_id = upload(s3_api, data, "tiny.jpg")
    assert httpx.get(link(s3_api, file_id)).content == data


def test_bytes_that_do_not_match_the_declared_md5_fail_and_leave_nothing(
    s3_api: Api,
    s3_server: S3Server,
    s3_bucket: str,
) -> None:
    data = image(S3_PART + 5000)
    before = s3_server.keys(s3_bucket, BLOBS)
    created = start(s3_api, data, "liar.jpg", etag=md5(b"something else"))
    pre = created["preuploadID"]
    for number, chunk in enumerate(chunks(data), 1):
        put_slice(s3_api, pre, number, chunk)
    answer = s3_api.post(COMPLETE, {"preuploadID": pre})
    if answer["code"] == 0 and not answer["data"]["completed"]:
        deadline = time.monotonic() + 60
        while answer["code"] == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = s3_api.post(RESULT, {"preuploadID": pre})
    assert answer["code"] == 1 and "etag" in answer["message"], answer
    assert s3_server.keys(s3_bucket, BLOBS) == before
    assert not [k for k in s3_server.keys(s3_bucket, UPLOADS) if pre in k]
    assert not [k for k in s3_server.multipart_uploads(s3_bucket) if pre in k]
    listed = s3_api.ok("POST", "/api/v1/oss/file/list", {"limit": 100, "type": 1})
    assert "liar.jpg" not in {f["filename"] for f in listed["fileList"]}


def test_complete_with_a_slice_missing_is_refused(s3_api: Api) -> None:
    data = image(2 * S3_PART + 1)
    created = start(s3_api, data, "holes.jpg")
    pre = created["preuploadID"]
    parts = chunks(data)
    put_slice(s3_api, pre, 1, parts[0])
    put_slice(s3_api, pre, 3, parts[2])
    answer = s3_api.post(COMPLETE, {"preuploadID": pre})
    assert answer["code"] == 1 and "2" in answer["message"], answer
    put_slice(s3_api, pre, 2, parts[1])  # the upload is still open: send it and finish
    assert md5(httpx.get(link(s3_api, finish(s3_api, pre)), timeout=60).content) == md5(data)


def test_same_bytes_share_one_object_which_goes_with_the_last_file(
    s3_api: Api,
    other_s3_api: Api,
    s3_server: S3Server,
    s3_bucket: str,
) -> None:
    data = image(S3_PART + 77)
    first = upload(s3_api, data, "one.jpg")
    key = [k for k in s3_server.keys(s3_bucket, BLOBS) if md5(data) in k]
    assert len(key) == 1
    again = start(other_s3_api, data, "two.jpg")
    assert again["reuse"] is True and again["fileID"]
    assert [k for k in s3_server.keys(s3_bucket, BLOBS) if md5(data) in k] == key
    s3_api.ok("POST", DELETE, {"fileIDs": [first]})
    assert httpx.get(link(other_s3_api, again["fileID"])).content == data
    other_s3_api.ok("POST", DELETE, {"fileIDs": [again["fileID"]]})
    assert [k for k in s3_server.keys(s3_bucket, BLOBS) if md5(data) in k] == []


@pytest.fixture
def other_s3_api(s3_openpan: Server) -> Iterator[Api]:
    client = s3_openpan.client(s3_openpan.take_user())
    yield client
    client.close()


def test_proxied_links_answer_ranges_head_and_validators(s3_api: Api) -> None:
    data = image(300_000)
    url = link(s3_api, upload(s3_api, data, "ranges.jpg"))
    with httpx.Client(timeout=30) as http:
        full = http.get(url)
        assert full.status_code == 200 and full.content == data
        assert full.headers["content-length"] == str(len(data))
        assert full.headers["etag"] == f'"{md5(data)}"'
        assert full.headers["accept-ranges"] == "bytes"
        assert full.headers["x-content-type-options"] == "nosniff"
        assert "last-modified" in full.headers
        cases = {"bytes=0-9": data[:10], "bytes=-5": data[-5:], "bytes=299990-": data[-10:]}
        for header, expected in cases.items():
            part = http.get(url, headers={"Range": header})
            assert part.status_code == 206 and part.content == expected, header
            assert part.headers["content-range"].endswith(f"/{len(data)}")
        last = http.get(url, headers={"Range": "bytes=299999-400000"})
        assert last.status_code == 206 and last.content == data[-1:]
        beyond = http.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(data)}"
        head = http.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data))
        cached = http.get(url, headers={"If-None-Match": full.headers["etag"]})
        assert cached.status_code == 304 and cached.content == b""
        since = http.get(url, headers={"If-Modified-Since": full.headers["last-modified"]})
        assert since.status_code == 304
        stale = http.get(url, headers={"If-None-Match": '"0000"'})
        assert stale.status_code == 200 and stale.content == data


def test_redirect_mode_sends_clients_to_a_presigned_get(
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket()
    srv = make_server(tmp_path, **s3_env(s3_server, bucket, OPENPAN_OBJECT_SERVING="redirect"))
    srv.start()
    client = srv.client(srv.take_user())
    try:
        data = image(S3_PART + 999)
        url = link(client, upload(client, data, "moved.jpg"))
        with httpx.Client(timeout=30) as http:
            hop = http.get(url)
            assert hop.status_code == 302 and hop.content == b""
            target = hop.headers["location"]
            assert target.startswith(s3_server.endpoint + f"/{bucket}/")
            assert hop.headers["cache-control"] == "no-store"
            landed = http.get(url, follow_redirects=True)
            assert landed.status_code == 200 and md5(landed.content) == md5(data)
            assert landed.headers["content-type"] == "image/jpeg"
            ranged = http.get(target, headers={"Range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == data[10:20]
            # Validators are answered by openpan before any redirect.
            assert http.get(url, headers={"If-None-Match": f'"{md5(data)}"'}).status_code == 304
    finally:
        client.close()
        srv.stop()


def test_slices_smaller_than_the_store_allows_are_refused_at_start(
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    env = s3_env(s3_server, s3_server.new_bucket(), OPENPAN_SLICE_SIZE=str(1024 * 1024))
    srv = make_server(tmp_path, **env)
    with pytest.raises(RuntimeError, match="OPENPAN_SLICE_SIZE"):
        srv.start()


def test_readiness_checks_the_bucket(
    s3_openpan: Server,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    assert httpx.get(s3_openpan.url + "/readyz").text == "ready"
    srv = make_server(tmp_path, **s3_env(s3_server, "no-such-bucket-here"))
    srv.start()
    try:
        assert httpx.get(srv.url + "/healthz").status_code == 200
        answer = httpx.get(srv.url + "/readyz")
        assert answer.status_code == 503 and "storage" in answer.text
    finally:
        srv.stop()


def test_abandoned_uploads_are_aborted_in_the_store(
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket()
    env = s3_env(s3_server, bucket, OPENPAN_UPLOAD_SESSION_TTL="60")
    srv = make_server(tmp_path, **env)
    srv.start()
    client = srv.client(srv.take_user())
    try:
        data = image(S3_PART + 1)
        pre = start(client, data, "left.jpg")["preuploadID"]
        put_slice(client, pre, 1, data[:S3_PART])
        assert [k for k in s3_server.multipart_uploads(bucket) if pre in k]
        srv.stop()
        srv.env["OPENPAN_CLOCK_OFFSET"] = "120"  # past the session's deadline
        srv.start()
        client.token = client.fetch_token()
        deadline = time.monotonic() + 30
        while [k for k in s3_server.multipart_uploads(bucket) if pre in k]:
            assert time.monotonic() < deadline, "the sweep did not abort the upload"
            time.sleep(0.2)
        assert client.post(PARTS, {"preuploadID": pre})["code"] == 5066
    finally:
        client.close()
        srv.stop()


def test_presigned_part_urls_point_at_the_public_endpoint_when_set(
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    bucket = s3_server.new_bucket()
    public = "http://files.example.test:9000"
    url = s3_server.storage_url(bucket, public_endpoint=public)
    srv = make_server(tmp_path, **{**s3_env(s3_server, bucket), "OPENPAN_STORAGE_URL": url})
    srv.start()
    client = srv.client(srv.take_user())
    try:
        pre = start(client, image(100), "p.jpg")["preuploadID"]
        slice_url = client.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": 1})
        parsed = urlparse(slice_url["presignedURL"])
        assert f"{parsed.scheme}://{parsed.netloc}" == public
    finally:
        client.close()
        srv.stop()


def test_v2_slices_and_one_step_uploads_are_streamed_through_to_the_store(
    s3_api: Api, s3_server: S3Server, s3_bucket: str
) -> None:
    sliced = os.urandom(2 * S3_PART + 1000)
    sliced_id = diskkit.upload_v2(s3_api, sliced, "v2.bin", parallel=2)
    assert diskkit.download(s3_api, sliced_id) == sliced
    whole = os.urandom(3 * 1024 * 1024)
    answer = diskkit.single(s3_api, whole, "one-step.bin")
    assert answer["code"] == 0, answer
    assert diskkit.download(s3_api, int(answer["data"]["fileID"])) == whole
    stored = s3_server.keys(s3_bucket, BLOBS)
    assert [k for k in stored if md5(sliced) in k] and [k for k in stored if md5(whole) in k]
    assert not [k for k in s3_server.multipart_uploads(s3_bucket) if "uploads/" in k]


def test_an_offline_download_of_bytes_stored_already_takes_the_stored_object(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    """On S3 storing is an upload, so a download looks for identical bytes first and takes
    the object stored already (the local store stores first: there it is a rename)."""
    from conftest import OFFLINE_ENV
    from offline_kit import DEFAULT_DIR, origin_at, submit, succeeded

    data = image(300_000)
    srv = make_server(tmp_path / "srv", **s3_env(s3_server, s3_bucket), **OFFLINE_ENV)
    srv.start()
    api = srv.client(srv.take_user())
    try:
        with origin_at() as origin:
            succeeded(api, submit(api, origin.file("/a.bin", data)))
            keys = [k for k in s3_server.keys(s3_bucket, BLOBS) if md5(data) in k]
            assert len(keys) == 1
            succeeded(api, submit(api, origin.file("/b.bin", data)))
        assert [k for k in s3_server.keys(s3_bucket, BLOBS) if md5(data) in k] == keys
        folder = int(diskkit.names(api)[DEFAULT_DIR]["fileId"])
        files = diskkit.names(api, folder)
        assert {files["a.bin"]["etag"], files["b.bin"]["etag"]} == {md5(data)}
        assert diskkit.download(api, int(files["b.bin"]["fileId"])) == data
    finally:
        api.close()
        srv.stop()


def test_variants_are_made_from_and_stored_in_the_object_store(
    s3_api: Api, s3_server: S3Server, s3_bucket: str
) -> None:
    from test_link_variants import decoded, photo

    data = photo(600, 400)
    file_id = upload(s3_api, data, "stored.jpg")
    url = link(s3_api, file_id)
    # Its size was not read at upload (the bytes were not on this machine): read when asked.
    thumb = httpx.get(url + "?w=64&format=png", timeout=60)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert decoded(thumb.content).width == 64
    keys = [k for k in s3_server.keys(s3_bucket, "blobs-root/blobs/v/") if md5(data) in k]
    assert len(keys) == 1
    assert httpx.get(url + "?w=64&format=png", timeout=60).content == thumb.content
    ranged = httpx.get(url + "?w=64&format=png", headers={"Range": "bytes=1-4"}, timeout=60)
    assert ranged.status_code == 206 and ranged.content == thumb.content[1:5]
    s3_api.ok("POST", DELETE, {"fileIDs": [file_id]})
    assert s3_server.keys(s3_bucket, "blobs-root/blobs/v/" + md5(data)[:2]) == []
