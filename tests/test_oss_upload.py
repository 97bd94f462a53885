"""Image-bed uploads: create, presigned slices, parts, complete (sync and async), instant upload."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from conftest import Api, MiB, Server, jpeg_bytes
from imagebed import (
    ASYNC_RESULT,
    COMPLETE,
    CREATE,
    DELETE,
    DETAIL,
    LIST,
    MOVE,
    UPLOAD_URL,
    blob_files,
    chunk,
    create,
    listing,
    md5,
    mkdir,
    names,
    parts,
    put,
    put_slice,
    slice_url,
    upload_dirs,
)


def complete(api: Api, pre: str) -> dict[str, object]:
    done: dict[str, object] = api.ok("POST", COMPLETE, {"preuploadID": pre})
    return done


def download(api: Api, file_id: str) -> bytes:
    url = api.ok("GET", DETAIL, {"fileID": file_id})["downloadURL"]
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200
    return response.content


# The flow ----------------------------------------------------------------------------------


def test_small_upload_completes_synchronously(api: Api, server: Server) -> None:
    data = jpeg_bytes(300_000)
    made = create(api, data, "small.jpg")
    assert made["reuse"] is False and made["fileID"] == "" and made["sliceSize"] == MiB
    pre = made["preuploadID"]
    url = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": 1})
    assert url["isMultipart"] is False
    assert url["presignedURL"].startswith(server.url + "/")
    response = put(url["presignedURL"], data)
    assert response.status_code == 200 and response.content == b""
    assert parts(api, pre) == [{"partNumber": "1", "size": len(data), "etag": md5(data)}]
    done = complete(api, pre)
    assert done["async"] is False and done["completed"] is True
    file_id = done["fileID"]
    assert isinstance(file_id, str) and file_id
    assert download(api, file_id) == data
    assert api.ok("POST", ASYNC_RESULT, {"preuploadID": pre}) == {
        "completed": True,
        "fileID": file_id,
    }
    # Completing again answers the same; the slices are gone from the store.
    assert complete(api, pre)["fileID"] == file_id
    assert pre not in upload_dirs(server)


def test_slices_in_any_order_in_parallel_and_resent(api: Api) -> None:
    data = jpeg_bytes(5 * MiB + 12345)
    made = create(api, data, "parallel.jpg")
    pre, size = made["preuploadID"], made["sliceSize"]
    count = -(-len(data) // size)
    urls = {n: slice_url(api, pre, n) for n in range(count, 0, -1)}
    assert api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": 1})["isMultipart"] is True

    def send(number: int) -> int:
        return put(urls[number], chunk(data, number, size)).status_code

    # Every slice twice, all at once, in reverse order.
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(send, [*range(count, 0, -1), *range(1, count + 1)]))
    assert codes == [200] * (2 * count)
    listed = parts(api, pre)
    assert [p["partNumber"] for p in listed] == [str(n) for n in range(1, count + 1)]
    for part in listed:
        piece = chunk(data, int(part["partNumber"]), size)
        assert part == {"partNumber": part["partNumber"], "size": len(piece), "etag": md5(piece)}
    # A slice re-sent with other bytes replaces the old ones; then the right bytes once more.
    assert put(urls[2], jpeg_bytes(size)).status_code == 200
    assert parts(api, pre)[1]["etag"] != md5(chunk(data, 2, size))
    assert put(urls[2], chunk(data, 2, size)).status_code == 200
    done = api.ok("POST", COMPLETE, {"preuploadID": pre})
    file_id = done["fileID"] if done["completed"] else api.wait_async(pre)
    assert download(api, file_id) == data


def test_large_upload_completes_asynchronously(api: Api) -> None:
    data = jpeg_bytes(3 * MiB)  # the shared server verifies up to 2 MiB in the request
    made = create(api, data, "large.jpg")
    pre = made["preuploadID"]
    for number in (3, 1, 2):
        put_slice(api, pre, data, number, made["sliceSize"])
    done = complete(api, pre)
    assert done == {"async": True, "completed": False, "fileID": ""}
    file_id = api.wait_async(pre)
    assert api.ok("POST", ASYNC_RESULT, {"preuploadID": pre})["fileID"] == file_id
    assert download(api, file_id) == data
    assert "large.jpg" in names(api)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/octet-stream",
        "image/jpeg",
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "text/plain; charset=utf-8",
        "",
    ],
)
def test_slice_put_takes_any_content_type_and_no_auth(api: Api, content_type: str | None) -> None:
    data = jpeg_bytes(20_000)
    made = create(api, data, "ct.jpg")
    headers = {} if content_type is None else {"Content-Type": content_type}
    with httpx.Client() as client:
        request = client.build_request(
            "PUT", slice_url(api, made["preuploadID"], 1), content=data, headers=headers
        )
        assert content_type is not None or "content-type" not in request.headers
        assert "authorization" not in request.headers and "platform" not in request.headers
        response = client.send(request)
    assert response.status_code == 200 and response.content == b""
    assert complete(api, made["preuploadID"])["completed"] is True
    api.ok("POST", DELETE, {"fileIDs": [listing(api)[0]["fileId"]]})


def test_slice_put_without_content_length_streams(api: Api) -> None:
    data = jpeg_bytes(MiB + 500)
    made = create(api, data, "chunked.jpg")
    pre = made["preuploadID"]

    def pieces(body: bytes) -> Iterator[bytes]:
        for start in range(0, len(body), 100_000):
            yield body[start : start + 100_000]

    for number in (1, 2):
        response = put(slice_url(api, pre, number), pieces(chunk(data, number, MiB)))
        assert response.status_code == 200, response.text
    assert len(parts(api, pre)) == 2


# Refused slices ----------------------------------------------------------------------------


def test_every_slice_but_the_last_must_be_exactly_slice_size(api: Api) -> None:
    data = jpeg_bytes(2 * MiB + 1000)
    made = create(api, data, "sizes.jpg")
    pre = made["preuploadID"]
    url1, url3 = slice_url(api, pre, 1), slice_url(api, pre, 3)
    wrong = [
        (url1, data[: MiB - 1]),  # a middle slice one byte short
        (url1, data[: MiB + 1]),  # one byte long
        (url1, b""),
        (url3, data[-999:]),  # the last slice has its own exact size
        (url3, data[-1001:]),
    ]
    for url, body in wrong:
        response = put(url, body)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == 1 and "slice" in response.json()["message"]
    assert parts(api, pre) == []
    refused = api.post(COMPLETE, {"preuploadID": pre})
    assert refused["code"] == 1 and "preuploadID" in refused["message"]
    for number in (1, 2, 3):
        put_slice(api, pre, data, number, MiB)
    file_id = api.ok("POST", COMPLETE, {"preuploadID": pre})["fileID"] or api.wait_async(pre)
    assert download(api, file_id) == data


def test_a_slice_larger_than_slice_size_is_refused_before_it_is_read(api: Api) -> None:
    data = jpeg_bytes(2 * MiB)
    made = create(api, data, "too-big.jpg")
    response = put(slice_url(api, made["preuploadID"], 1), jpeg_bytes(8 * MiB))
    assert response.status_code == 400 and "slice" in response.json()["message"]
    assert parts(api, made["preuploadID"]) == []


def _with_query(url: str, **changes: str | None) -> str:
    parsed = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parsed._replace(query=urlencode(query)))


def test_bad_signatures_are_refused(api: Api) -> None:
    data = jpeg_bytes(2 * MiB)
    made = create(api, data, "signed.jpg")
    pre = made["preuploadID"]
    url1, url2 = slice_url(api, pre, 1), slice_url(api, pre, 2)
    signature = parse_qs(urlsplit(url1).query)["signature"][0]
    expires = parse_qs(urlsplit(url1).query)["expires"][0]
    other = create(api, jpeg_bytes(100), "other.jpg")["preuploadID"]
    forged = [
        _with_query(url1, signature=signature[::-1]),
        _with_query(url1, signature=signature.upper()),
        _with_query(url1, signature=None),
        _with_query(url1, signature=""),
        _with_query(url1, signature=signature + "00"),
        _with_query(url1, expires=str(int(expires) + 1)),
        _with_query(url1, expires=None),
        _with_query(url1, expires="-1"),
        _with_query(url1, expires="9" * 30),
        url1.replace("/1?", "/2?"),  # slice 1's signature on slice 2
        url2.replace("/2?", "/-2?"),
        url2.replace("/2?", "/2.0?"),
        url1.replace(pre, other),  # another upload's path
    ]
    for url in forged:
        response = put(url, chunk(data, 1, MiB))
        assert response.status_code in (400, 403, 404), (url, response.status_code)
        assert response.json()["code"] != 0 and response.json()["data"] is None
    assert parts(api, pre) == []
    assert put(url1, chunk(data, 1, MiB)).status_code == 200


def test_a_closed_upload_takes_no_more_slices(api: Api) -> None:
    data = jpeg_bytes(50_000)
    made = create(api, data, "closed.jpg")
    url = slice_url(api, made["preuploadID"], 1)
    assert put(url, data).status_code == 200
    file_id = complete(api, made["preuploadID"])["fileID"]
    response = put(url, jpeg_bytes(50_000))
    assert response.status_code in (400, 404) and response.json()["code"] != 0
    refused = api.post(UPLOAD_URL, {"preuploadID": made["preuploadID"], "sliceNo": 1})
    assert refused["code"] != 0 and "preuploadID" in refused["message"]
    assert download(api, str(file_id)) == data


def test_slice_numbers_are_checked_when_asking_for_a_url(api: Api) -> None:
    data = jpeg_bytes(MiB + 1)
    pre = create(api, data, "numbers.jpg")["preuploadID"]
    for number in (0, -1, 3, 100_001, 10**20, "1.5", "x", True, None, [1, 2], {}):
        answer = api.post(UPLOAD_URL, {"preuploadID": pre, "sliceNo": number})
        assert answer["code"] == 1 and "sliceNo" in answer["message"], (number, answer)
    assert api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": 2})["isMultipart"] is True


# Completion failures -----------------------------------------------------------------------


def test_complete_with_missing_slices_is_refused_and_can_be_finished(api: Api) -> None:
    data = jpeg_bytes(2 * MiB + 10)
    made = create(api, data, "missing.jpg")
    pre = made["preuploadID"]
    put_slice(api, pre, data, 1, MiB)
    put_slice(api, pre, data, 3, MiB)
    refused = api.post(COMPLETE, {"preuploadID": pre})
    assert (
        refused["code"] == 1 and "preuploadID" in refused["message"] and "2" in refused["message"]
    )
    assert "missing.jpg" not in names(api)
    put_slice(api, pre, data, 2, MiB)
    file_id = api.ok("POST", COMPLETE, {"preuploadID": pre})["fileID"] or api.wait_async(pre)
    assert download(api, file_id) == data


@pytest.mark.parametrize("size", [200_000, 3 * MiB], ids=["sync", "async"])
def test_md5_mismatch_fails_clearly_and_stores_nothing(api: Api, server: Server, size: int) -> None:
    data = jpeg_bytes(size)
    declared = md5(jpeg_bytes(size))
    made = create(api, data, "liar.jpg", etag=declared)
    pre = made["preuploadID"]
    for number in range(1, -(-size // MiB) + 1):
        put_slice(api, pre, data, number, MiB)
    answer = api.post(COMPLETE, {"preuploadID": pre})
    if answer["code"] == 0:
        assert answer["data"]["async"] is True and answer["data"]["completed"] is False
        for _ in range(600):
            answer = api.post(ASYNC_RESULT, {"preuploadID": pre})
            if answer["code"] != 0 or answer["data"]["completed"]:
                break
            threading.Event().wait(0.1)
    assert answer["code"] == 1 and "etag" in answer["message"] and answer["data"] is None
    # Asking again gives the same clear failure.
    again = api.post(ASYNC_RESULT, {"preuploadID": pre})
    assert again["code"] == 1 and again["message"] == answer["message"]
    assert "liar.jpg" not in names(api)
    assert blob_files(server, declared) == [] and blob_files(server, md5(data)) == []
    assert pre not in upload_dirs(server)
    assert parts(api, pre) == []


def test_storage_failure_during_completion_fails_cleanly(fresh_server: Server) -> None:
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    try:
        data = jpeg_bytes(100_000)
        # The blob's directory cannot be made: a plain file sits where it belongs.
        blocker = fresh_server.data_dir / "blobs" / "blobs" / md5(data)[:2]
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"in the way")
        pre = create(api, data, "blocked.jpg")["preuploadID"]
        put_slice(api, pre, data, 1, MiB)
        answer = api.post(COMPLETE, {"preuploadID": pre})
        assert answer["code"] == 1 and answer["data"] is None, answer
        later = api.post(ASYNC_RESULT, {"preuploadID": pre})
        assert later["code"] == 1 and later["message"] == answer["message"], later
        assert listing(api) == []
        blocker.unlink()
        assert api.oss_upload(data, "unblocked.jpg")
        assert download(api, listing(api)[0]["fileId"]) == data
    finally:
        api.close()


# Instant upload and deduplication ----------------------------------------------------------


def test_instant_upload_across_users_shares_one_stored_copy(
    api: Api, other_api: Api, server: Server
) -> None:
    data = jpeg_bytes(1_500_000)
    etag = md5(data)
    first = api.oss_upload(data, "original.jpg")
    assert len(blob_files(server, etag)) == 1
    again = create(other_api, data, "copy.jpg")
    assert again["reuse"] is True and again["preuploadID"] == ""
    assert isinstance(again["fileID"], str) and again["fileID"] != first
    assert isinstance(again["sliceSize"], int)
    mine = create(api, data, "second-name.jpg")
    assert mine["reuse"] is True
    assert len(blob_files(server, etag)) == 1
    detail = other_api.ok("GET", DETAIL, {"fileID": again["fileID"]})
    assert detail["etag"] == etag and detail["size"] == len(data)
    assert download(other_api, again["fileID"]) == data
    # The bytes stay while any file refers to them, and go with the last one.
    api.ok("POST", DELETE, {"fileIDs": [first, mine["fileID"]]})
    assert len(blob_files(server, etag)) == 1
    assert download(other_api, again["fileID"]) == data
    other_api.ok("POST", DELETE, {"fileIDs": [again["fileID"]]})
    assert blob_files(server, etag) == []
    # Once gone, the same bytes are uploaded in full again.
    assert create(api, data, "back.jpg")["reuse"] is False


def test_the_same_bytes_uploaded_twice_at_once_are_stored_once(
    api: Api, other_api: Api, server: Server
) -> None:
    data = jpeg_bytes(700_000)
    sessions = [(who, create(who, data, "race.jpg")["preuploadID"]) for who in (api, other_api)]
    for who, pre in sessions:
        put_slice(who, pre, data, 1, MiB)
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda s: complete(s[0], s[1]), sessions))
    assert all(d["completed"] for d in done)
    assert len(blob_files(server, md5(data))) == 1
    assert download(api, str(done[0]["fileID"])) == data
    assert download(other_api, str(done[1]["fileID"])) == data


# Names, types and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename",
    ["a.txt", "a.exe", "noext", ".jpg", "a.jpg.txt", "a.", "a.jpg ", "a.jpgx", "a.heic"],
)
def test_only_image_extensions_are_accepted(api: Api, filename: str) -> None:
    answer = api.post(CREATE, {"filename": filename, "etag": "0" * 32, "size": 10, "type": 1})
    assert answer["code"] == 1 and "filename" in answer["message"], answer


@pytest.mark.parametrize(
    "filename",
    [
        "a.png",
        "a.gif",
        "a.jpeg",
        "a.tiff",
        "a.webp",
        "a.jpg",
        "a.tif",
        "a.svg",
        "a.bmp",
        "UPPER.JPG",
        "多.点.名字.Png",
        "空 格.webp",
    ],
)
def test_every_image_extension_is_accepted(api: Api, filename: str) -> None:
    made = create(api, jpeg_bytes(100), filename)
    assert made["reuse"] is False and made["preuploadID"]


def test_the_100_mb_limit(api: Api) -> None:
    too_big = api.post(
        CREATE, {"filename": "huge.jpg", "etag": "0" * 32, "size": 100_000_001, "type": 1}
    )
    assert too_big["code"] == 1 and "size" in too_big["message"]
    at_limit = api.ok(
        "POST", CREATE, {"filename": "max.jpg", "etag": "1" * 32, "size": 100_000_000}
    )
    assert at_limit["reuse"] is False and at_limit["sliceSize"] == MiB


def test_a_name_clash_is_an_error(api: Api) -> None:
    data = jpeg_bytes(5000)
    api.oss_upload(data, "taken.jpg")
    mkdir(api, "dir.jpg")
    for name in ("taken.jpg", "dir.jpg"):
        for payload in (data, jpeg_bytes(100)):  # instant upload or not
            answer = api.post(
                CREATE, {"filename": name, "etag": md5(payload), "size": len(payload)}
            )
            assert answer["code"] == 1 and "filename" in answer["message"], answer
    # Names are per directory: the same name elsewhere is fine.
    folder = mkdir(api, "elsewhere")
    assert create(api, data, "taken.jpg", parent=folder)["reuse"] is True


def test_a_name_taken_while_uploading_fails_the_upload_clearly(api: Api) -> None:
    data, rival = jpeg_bytes(40_000), jpeg_bytes(40_000)
    pre = create(api, data, "contested.jpg")["preuploadID"]
    put_slice(api, pre, data, 1, MiB)
    api.oss_upload(rival, "contested.jpg")
    answer = api.post(COMPLETE, {"preuploadID": pre})
    assert answer["code"] == 1 and "contested.jpg" in answer["message"]
    assert [f["etag"] for f in listing(api)] == [md5(rival)]


def test_upload_into_a_directory_and_the_directory_goes_meanwhile(api: Api) -> None:
    folder = mkdir(api, "album")
    data = jpeg_bytes(30_000)
    file_id = api.oss_upload(data, "in-album.jpg", parent=folder)
    entry = api.ok("GET", DETAIL, {"fileID": file_id})
    assert entry["parentFileId"] == folder and entry["parentFilename"] == "album"
    doomed = mkdir(api, "doomed")
    other = jpeg_bytes(30_000)
    pre = create(api, other, "late.jpg", parent=doomed)["preuploadID"]
    put_slice(api, pre, other, 1, MiB)
    api.ok("POST", DELETE, {"fileIDs": [doomed]})
    answer = api.post(COMPLETE, {"preuploadID": pre})
    assert answer["code"] != 0 and answer["data"] is None
    assert "late.jpg" not in names(api)


def test_another_users_upload_is_like_an_unknown_one(api: Api, other_api: Api) -> None:
    data = jpeg_bytes(1000)
    pre = create(api, data, "private.jpg")["preuploadID"]
    put_slice(api, pre, data, 1, MiB)
    unknown = "x" + pre[1:] if pre[0] != "x" else "y" + pre[1:]
    for path, extra in [
        (UPLOAD_URL, {"sliceNo": 1}),
        ("/upload/v1/oss/file/list_upload_parts", {}),
        (COMPLETE, {}),
        (ASYNC_RESULT, {}),
    ]:
        theirs = other_api.post(path, {"preuploadID": pre, **extra})
        nobodys = other_api.post(path, {"preuploadID": unknown, **extra})
        assert theirs["code"] == nobodys["code"] == 5066
        assert theirs["message"] == nobodys["message"] and "preuploadID" in theirs["message"]
    assert complete(api, pre)["completed"] is True


# The newcomer's path, at full size ---------------------------------------------------------


def test_a_90_mb_image_with_the_default_slice_size(fresh_server: Server) -> None:
    fresh_server.env.pop("OPENPAN_SLICE_SIZE")
    fresh_server.env.pop("OPENPAN_SYNC_COMPLETE_MAX")
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    try:
        data = jpeg_bytes(90 * 1000 * 1000)
        etag = md5(data)
        made = create(api, data, "big.jpg")
        assert made["sliceSize"] == 16 * MiB
        pre, size = made["preuploadID"], made["sliceSize"]
        count = -(-len(data) // size)
        assert count == 6
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda n: put_slice(api, pre, data, n, size), range(1, count + 1)))
        done = complete(api, pre)
        assert done["async"] is True
        file_id = api.wait_async(pre)
        again = create(api, data, "big-again.jpg")
        assert again["reuse"] is True and again["fileID"] != file_id
        entries = {e["filename"]: e for e in listing(api)}
        assert entries["big.jpg"]["size"] == len(data) and entries["big.jpg"]["etag"] == etag
        fetched = httpx.get(entries["big.jpg"]["downloadURL"], timeout=120)
        assert fetched.status_code == 200 and md5(fetched.content) == etag
        assert len(blob_files(fresh_server, etag)) == 1
        folder = mkdir(api, "moved")
        api.ok("POST", MOVE, {"fileIDs": [file_id], "toParentFileID": folder})
        assert [e["fileId"] for e in listing(api, folder)] == [file_id]
        api.ok("POST", DELETE, {"fileIDs": [file_id, again["fileID"]]})
        assert api.post(DETAIL, {"fileID": file_id})["code"] == 5066
        assert blob_files(fresh_server, etag) == []
        assert httpx.get(entries["big.jpg"]["downloadURL"]).status_code == 404
        assert [e["filename"] for e in listing(api)] == ["moved"]
    finally:
        api.close()


def test_list_shows_uploads_in_the_order_they_were_made(api: Api) -> None:
    made = [api.oss_upload(jpeg_bytes(100), f"order-{n}.jpg") for n in range(5)]
    assert [e["fileId"] for e in api.ok("POST", LIST, {"limit": 100})["fileList"]] == made
