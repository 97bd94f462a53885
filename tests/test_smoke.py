"""The newcomer's path: token, upload, instant re-upload, list, open the link, move, delete."""

from __future__ import annotations

import hashlib

import httpx
from conftest import Api, jpeg_bytes


def test_upload_list_link_move_delete(api: Api) -> None:
    data = jpeg_bytes(2_500_000)
    file_id = api.oss_upload(data, "photo.jpg")
    again = api.ok(
        "POST",
        "/upload/v1/oss/file/create",
        {
            "parentFileID": "",
            "filename": "copy.jpg",
            "etag": hashlib.md5(data).hexdigest(),
            "size": len(data),
            "type": 1,
        },
    )
    assert again["reuse"] is True and again["fileID"] and again["fileID"] != file_id
    listed = api.ok("POST", "/api/v1/oss/file/list", {"limit": 100, "type": 1})
    names = {f["filename"]: f for f in listed["fileList"]}
    assert set(names) == {"photo.jpg", "copy.jpg"} and listed["lastFileId"] == "-1"
    link = names["photo.jpg"]["downloadURL"]
    assert httpx.get(link).content == data
    folder = api.ok(
        "POST", "/upload/v1/oss/file/mkdir", {"name": "album", "parentID": "", "type": 1}
    )
    dir_id = folder["list"][0]["dirID"]
    api.ok("POST", "/api/v1/oss/file/move", {"fileIDs": [file_id], "toParentFileID": dir_id})
    inside = api.ok(
        "POST", "/api/v1/oss/file/list", {"parentFileId": dir_id, "limit": 10, "type": 1}
    )
    assert [f["fileId"] for f in inside["fileList"]] == [file_id]
    assert httpx.get(link).content == data  # a moved file keeps its link
    api.ok("POST", "/api/v1/oss/file/delete", {"fileIDs": [dir_id]})
    assert httpx.get(link).status_code == 404
    detail = api.get("/api/v1/oss/file/detail", {"fileID": file_id})
    assert detail["code"] == 5066 and detail["data"] is None
