"""Helpers for cloud-disk tests: the upload flows as a client does them, and small shortcuts."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from conftest import Api

MKDIR = "/upload/v1/file/mkdir"
CREATE_V1 = "/upload/v1/file/create"
UPLOAD_URL = "/upload/v1/file/get_upload_url"
PARTS = "/upload/v1/file/list_upload_parts"
COMPLETE_V1 = "/upload/v1/file/upload_complete"
ASYNC_RESULT = "/upload/v1/file/upload_async_result"
CREATE_V2 = "/upload/v2/file/create"
SLICE_V2 = "/upload/v2/file/slice"
COMPLETE_V2 = "/upload/v2/file/upload_complete"
DOMAIN = "/upload/v2/file/domain"
SINGLE = "/upload/v2/file/single/create"
LIST_V2 = "/api/v2/file/list"
LIST_V1 = "/api/v1/file/list"
DETAIL = "/api/v1/file/detail"
INFOS = "/api/v1/file/infos"
MOVE = "/api/v1/file/move"
NAME = "/api/v1/file/name"
RENAME = "/api/v1/file/rename"
TRASH = "/api/v1/file/trash"
RECOVER = "/api/v1/file/recover"
RECOVER_BY_PATH = "/api/v1/file/recover/by_path"
DELETE = "/api/v1/file/delete"
USER_INFO = "/api/v1/user/info"
DOWNLOAD_INFO = "/api/v1/file/download_info"
COPY = "/api/v1/oss/source/copy"
COPY_PROCESS = "/api/v1/oss/source/copy/process"
COPY_FAIL = "/api/v1/oss/source/copy/fail"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def blob(size: int) -> bytes:
    """``size`` fresh random bytes, unlike any other call's."""
    return os.urandom(size)


def mkdir(api: Api, name: str, parent: int = 0) -> int:
    dir_id: int = api.ok("POST", MKDIR, {"name": name, "parentID": parent})["dirID"]
    assert isinstance(dir_id, int) and dir_id > 0
    return dir_id


def create_v1(api: Api, data: bytes, name: str, parent: int = 0, **extra: Any) -> dict[str, Any]:
    body = {"parentFileID": parent, "filename": name, "etag": md5(data), "size": len(data)}
    return api.post(CREATE_V1, {**body, **extra})


def put_slices_v1(api: Api, pre: str, data: bytes, slice_size: int, parallel: int = 1) -> None:
    count = max(1, -(-len(data) // slice_size))

    def send(number: int) -> None:
        url = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": number})["presignedURL"]
        chunk = data[(number - 1) * slice_size : number * slice_size]
        response = httpx.put(url, content=chunk, timeout=60)
        assert response.status_code == 200 and response.content == b"", response.text

    numbers = list(range(count, 0, -1))  # out of order on purpose
    if parallel > 1:
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(send, numbers))
    else:
        for number in numbers:
            send(number)


def upload_v1(api: Api, data: bytes, name: str, parent: int = 0, **extra: Any) -> int:
    """The whole V1 flow; returns the new file's ID."""
    created = create_v1(api, data, name, parent, **extra)
    assert created["code"] == 0, created
    body = created["data"]
    if body["reuse"]:
        assert isinstance(body["fileID"], int) and body["fileID"] > 0
        return int(body["fileID"])
    put_slices_v1(api, body["preuploadID"], data, body["sliceSize"])
    return complete_v1(api, body["preuploadID"])


def complete_v1(api: Api, pre: str) -> int:
    done = api.ok("POST", COMPLETE_V1, {"preuploadID": pre})
    if done["completed"]:
        assert done["async"] is False and isinstance(done["fileID"], int)
        return int(done["fileID"])
    assert done["async"] is True and done["fileID"] == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        result = api.ok("POST", ASYNC_RESULT, {"preuploadID": pre})
        if result["completed"]:
            assert isinstance(result["fileID"], int) and result["fileID"] > 0
            return int(result["fileID"])
        time.sleep(0.2)
    raise AssertionError("upload did not complete")


def post_slice(
    api: Api, server: str, pre: str, number: int, chunk: bytes, slice_md5: str | None = None
) -> dict[str, Any]:
    """One V2 slice, as a multipart form sent to the upload server with the token."""
    response = httpx.post(
        server + SLICE_V2,
        headers=api.headers,
        data={"preuploadID": pre, "sliceNo": str(number), "sliceMD5": slice_md5 or md5(chunk)},
        files={"slice": ("part", chunk, "application/octet-stream")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "data", "x-traceID"}, body
    return body


def complete_v2(api: Api, pre: str) -> int:
    """Poll V2 upload_complete through 20103 until the file is there."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = api.post(COMPLETE_V2, {"preuploadID": pre})
        if answer["code"] == 0:
            assert answer["data"]["completed"] is True, answer
            assert isinstance(answer["data"]["fileID"], int) and answer["data"]["fileID"] > 0
            return int(answer["data"]["fileID"])
        assert answer["code"] == 20103 and answer["data"] is None, answer
        time.sleep(0.2)
    raise AssertionError("V2 upload did not complete")


def upload_v2(api: Api, data: bytes, name: str, parent: int = 0, parallel: int = 1) -> int:
    """The whole V2 flow; returns the new file's ID."""
    created = api.ok(
        "POST",
        CREATE_V2,
        {"parentFileID": parent, "filename": name, "etag": md5(data), "size": len(data)},
    )
    if created["reuse"]:
        return int(created["fileID"])
    server, pre, size = created["servers"][0], created["preuploadID"], created["sliceSize"]
    count = max(1, -(-len(data) // size))

    def send(number: int) -> None:
        chunk = data[(number - 1) * size : number * size]
        answer = post_slice(api, server, pre, number, chunk)
        assert answer["code"] == 0 and answer["data"] is None, answer

    with ThreadPoolExecutor(max(1, parallel)) as pool:
        list(pool.map(send, range(1, count + 1)))
    return complete_v2(api, pre)


def single(api: Api, data: bytes, name: str, parent: int = 0, **fields: Any) -> dict[str, Any]:
    """The one-step V2 upload; returns the envelope."""
    form = {
        "parentFileID": str(parent),
        "filename": name,
        "etag": md5(data),
        "size": str(len(data)),
    }
    form.update({k: str(v) for k, v in fields.items()})
    response = httpx.post(
        api.server.url + SINGLE,
        headers=api.headers,
        data=form,
        files={"file": (name, data, "application/octet-stream")},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "data", "x-traceID"}, body
    return body


def listing(api: Api, parent: int = 0, **extra: Any) -> list[dict[str, Any]]:
    """Every entry of a directory through /api/v2/file/list, following lastFileId."""
    entries: list[dict[str, Any]] = []
    last = 0
    for _ in range(1000):
        page = api.ok(
            "GET", LIST_V2, {"parentFileId": parent, "limit": 100, "lastFileId": last, **extra}
        )
        entries.extend(page["fileList"])
        if page["lastFileId"] == -1:
            return entries
        last = page["lastFileId"]
    raise AssertionError("listing did not end")


def names(api: Api, parent: int = 0) -> dict[str, dict[str, Any]]:
    """Live entries of a directory by name."""
    return {e["filename"]: e for e in listing(api, parent) if e["trashed"] == 0}


def download(api: Api, file_id: int) -> bytes:
    url = api.ok("GET", DOWNLOAD_INFO, {"fileId": file_id})["downloadUrl"]
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, response.text
    return response.content
