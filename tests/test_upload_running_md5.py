"""The md5 of an upload is computed while its slices arrive; a slice sent again with other
bytes after it was hashed must still be caught by the check at completion."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
from conftest import Api, MiB, jpeg_bytes

CREATE = "/upload/v1/oss/file/create"
UPLOAD_URL = "/upload/v1/oss/file/get_upload_url"
COMPLETE = "/upload/v1/oss/file/upload_complete"
RESULT = "/upload/v1/oss/file/upload_async_result"


def _start(api: Api, data: bytes, name: str) -> tuple[str, int]:
    created = api.ok(
        "POST",
        CREATE,
        {
            "parentFileID": "",
            "filename": name,
            "etag": hashlib.md5(data).hexdigest(),
            "size": len(data),
            "type": 1,
        },
    )
    assert created["reuse"] is False
    return created["preuploadID"], created["sliceSize"]


def _put(api: Api, pre: str, number: int, body: bytes) -> None:
    url = api.ok("POST", UPLOAD_URL, {"preuploadID": pre, "sliceNo": number})["presignedURL"]
    assert httpx.put(url, content=body, timeout=60).status_code == 200


def _finish(api: Api, pre: str) -> dict[str, Any]:
    """The last answer of upload_async_result (or of complete when it finished at once)."""
    done = api.post(COMPLETE, {"preuploadID": pre})
    deadline = time.monotonic() + 60
    while done["code"] == 0 and not done["data"]["completed"] and time.monotonic() < deadline:
        time.sleep(0.1)
        done = api.post(RESULT, {"preuploadID": pre})
    return done


def test_slice_replaced_with_other_bytes_after_hashing_fails_the_md5(api: Api) -> None:
    data = jpeg_bytes(3 * MiB + 100)
    pre, size = _start(api, data, "replaced.jpg")
    for number in (1, 2, 3, 4):
        _put(api, pre, number, data[(number - 1) * size : number * size])
    time.sleep(0.5)  # let the running md5 take in the first slices (not required to fail)
    forged = bytes(b ^ 0xFF for b in data[:size])
    _put(api, pre, 1, forged)
    done = _finish(api, pre)
    assert done["code"] != 0 and "etag" in done["message"], done


def test_slice_sent_twice_with_the_same_bytes_completes(api: Api) -> None:
    data = jpeg_bytes(3 * MiB + 100)
    pre, size = _start(api, data, "twice.jpg")
    for number in (2, 1, 4, 3, 1, 4):  # out of order, some twice
        _put(api, pre, number, data[(number - 1) * size : number * size])
    done = _finish(api, pre)
    assert done["code"] == 0 and done["data"]["completed"], done
    detail = api.ok("GET", "/api/v1/oss/file/detail", {"fileID": done["data"]["fileID"]})
    assert httpx.get(detail["downloadURL"], timeout=60).content == data
