"""One user can never see or touch another's files, uploads or tasks, whatever IDs they send.

Generated from the route table: every authenticated endpoint (the 123pan API, openpan's own
and the web app's) is called by Mallory with Alice's IDs in every field that takes one — as
the image bed's and as the cloud disk's — so an endpoint added later is tried without anyone
remembering to. Afterwards Alice's things are exactly as they were, and no answer carried a
name only Alice knows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from conftest import Api, MiB, Server
from webapp_kit import Session, png, web_user

from openpan.api.routes import all_routes

# Endpoints with no ID to steal, or not the API's (pages, links, health, token, catch-alls).
NOT_BY_ID = {
    "/api/v1/access_token",
    "/api/v1/user/info",
    "/upload/v2/file/domain",
    "/healthz",
    "/readyz",
    "/",
    "/web/api/login",
    "/web/api/logout",
    "/web/api/me",
    "/web/api/account/secret",
    "/web/api/account/settings",
    "/web/api/account/password",
    "/web/api/shares",
    "/web/api/tasks",
}
SECRET_NAME = "alice-private-7f3e"


def routes() -> list[str]:
    paths = []
    for route in all_routes():
        path = getattr(route, "path", "")
        if "{" in path or path in NOT_BY_ID:
            continue  # catch-alls, presigned slices, links (their own tests), pages
        if path.startswith(("/api/", "/upload/", "/openpan/", "/web/api/")):
            paths.append(path)
    return paths


@pytest.fixture(scope="module")
def alice(server: Server) -> Iterator[dict[str, Any]]:
    """Alice's things: image-bed folder and image, cloud-disk folder and file, an open upload
    in each space, an offline task and a copy task."""
    api = server.client(server.take_user())
    made: dict[str, Any] = {"api": api}
    folder = api.ok(
        "POST", "/upload/v1/oss/file/mkdir", {"name": [SECRET_NAME], "parentID": "", "type": 1}
    )
    made["oss_dir"] = folder["list"][0]["dirID"]
    made["image_bytes"] = png(30, 30)
    made["oss_file"] = api.oss_upload(
        made["image_bytes"], f"{SECRET_NAME}.png", parent=made["oss_dir"]
    )
    made["disk_dir"] = api.ok(
        "POST", "/upload/v1/file/mkdir", {"name": SECRET_NAME, "parentID": 0}
    )["dirID"]
    disk_bytes = b"\x89PNG\r\n\x1a\n" + bytes(2000) + b"alice"
    created = api.ok(
        "POST",
        "/upload/v1/file/create",
        {
            "parentFileID": made["disk_dir"],
            "filename": f"{SECRET_NAME}.png",
            "etag": hashlib.md5(disk_bytes).hexdigest(),
            "size": len(disk_bytes),
        },
    )
    pre = created["preuploadID"]
    url = api.ok("POST", "/upload/v1/file/get_upload_url", {"preuploadID": pre, "sliceNo": 1})[
        "presignedURL"
    ]
    assert httpx.put(url, content=disk_bytes).status_code == 200
    done = api.ok("POST", "/upload/v1/file/upload_complete", {"preuploadID": pre})
    made["disk_file"] = (
        done["fileID"]
        if done["completed"]
        else int(api.wait_async(pre, "/upload/v1/file/upload_async_result"))
    )
    # Uploads left open, one per space.
    pending = png(40, 40)
    made["oss_pre"] = api.ok(
        "POST",
        "/upload/v1/oss/file/create",
        {
            "parentFileID": "",
            "filename": "open.png",
            "etag": hashlib.md5(pending).hexdigest(),
            "size": len(pending),
            "type": 1,
        },
    )["preuploadID"]
    big = bytes(2 * MiB) + b"open"
    made["disk_pre"] = api.ok(
        "POST",
        "/upload/v1/file/create",
        {
            "parentFileID": 0,
            "filename": "open.bin",
            "etag": hashlib.md5(big).hexdigest(),
            "size": len(big),
        },
    )["preuploadID"]
    made["offline_task"] = api.ok(
        "POST", "/api/v1/offline/download", {"url": "http://127.0.0.1:9/nothing.png"}
    )["taskID"]
    made["copy_task"] = api.ok(
        "POST",
        "/api/v1/oss/source/copy",
        {"fileIDs": [str(made["disk_file"])], "toParentFileID": "", "sourceType": "1", "type": 1},
    )["taskID"]
    made["share"] = None
    yield made
    api.close()


def bodies(alice: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ID field, filled with Alice's IDs: as the image bed's, then as the cloud disk's."""
    oss_ids = [alice["oss_file"], alice["oss_dir"]]
    disk_ids = [alice["disk_file"], alice["disk_dir"]]
    common = {
        "name": "mallory-was-here",
        "filename": "mallory.png",
        "fileName": "mallory.png",
        "type": 1,
    }
    as_oss = {
        **common,
        "fileID": alice["oss_file"],
        "fileId": alice["oss_file"],
        "fileIDs": oss_ids,
        "fileIds": oss_ids,
        "parentFileID": alice["oss_dir"],
        "parentFileId": alice["oss_dir"],
        "parentID": alice["oss_dir"],
        "toParentFileID": "",
        "preuploadID": alice["oss_pre"],
        "sliceNo": 1,
        "taskID": alice["copy_task"],
        "etag": hashlib.md5(alice["image_bytes"]).hexdigest(),
        "size": len(alice["image_bytes"]),
        "space": "oss",
        "token": "x",
    }
    as_disk = {
        **common,
        "fileID": alice["disk_file"],
        "fileId": alice["disk_file"],
        "fileIDs": disk_ids,
        "fileIds": disk_ids,
        "parentFileID": alice["disk_dir"],
        "parentFileId": alice["disk_dir"],
        "parentID": alice["disk_dir"],
        "toParentFileID": 0,
        "preuploadID": alice["disk_pre"],
        "sliceNo": 1,
        "taskID": alice["offline_task"],
        "renameList": [f"{alice['disk_file']}|mallory.png"],
        "space": "disk",
        "url": "http://127.0.0.1:9/x.png",
    }
    return [as_oss, as_disk]


def test_every_endpoint_refuses_another_users_ids(server: Server, alice: dict[str, Any]) -> None:
    mallory = server.client(server.take_user())
    web = Session(server, web_user(server)["name"])
    paths = routes()
    assert len(paths) > 40  # the table was read
    answers: list[tuple[str, str]] = []
    try:
        for path in paths:
            for body in bodies(alice):
                if path.startswith("/web/api/"):
                    for method, kwargs in (("GET", {"params": body}), ("POST", {"json": body})):
                        answer = web.http.request(
                            method, path, headers={"X-CSRF-Token": web.csrf}, **kwargs
                        )
                        answers.append((path, answer.text))
                    continue
                for method, kwargs in (
                    ("POST", {"json": body}),
                    ("GET", {"params": {k: v for k, v in body.items() if not isinstance(v, list)}}),
                ):
                    response = mallory.http.request(method, path, headers=mallory.headers, **kwargs)
                    assert response.status_code < 500, (path, response.text)
                    answers.append((path, response.text))
    finally:
        mallory.close()
        web.close()
    leaked = [path for path, text in answers if SECRET_NAME in text]
    assert leaked == [], leaked
    check_alice_untouched(alice)


def check_alice_untouched(alice: dict[str, Any]) -> None:
    api: Api = alice["api"]
    detail = api.ok("GET", "/api/v1/oss/file/detail", {"fileID": alice["oss_file"]})
    assert detail["filename"] == f"{SECRET_NAME}.png" and detail["parentFileId"] == alice["oss_dir"]
    assert httpx.get(detail["downloadURL"]).content == alice["image_bytes"]
    listed = api.ok("POST", "/api/v1/oss/file/list", {"parentFileId": ""})["fileList"]
    names = {f["filename"] for f in listed}
    assert SECRET_NAME in names and "mallory-was-here" not in names
    disk = api.ok("GET", "/api/v1/file/detail", {"fileID": alice["disk_file"]})
    assert disk["filename"] == f"{SECRET_NAME}.png" and disk["trashed"] == 0
    assert disk["parentFileID"] == alice["disk_dir"]
    root = api.ok("GET", "/api/v2/file/list", {"parentFileId": 0, "limit": 100})["fileList"]
    assert {e["filename"] for e in root if not e["trashed"]} >= {SECRET_NAME}
    assert "mallory-was-here" not in {e["filename"] for e in root}
    # Her open uploads are still open (Mallory could neither complete nor read them).
    for step, pre in (
        ("/upload/v1/oss/file", alice["oss_pre"]),
        ("/upload/v1/file", alice["disk_pre"]),
    ):
        assert api.ok("POST", f"{step}/list_upload_parts", {"preuploadID": pre})["parts"] == []
