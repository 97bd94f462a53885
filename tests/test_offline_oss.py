"""Offline migration into the image bed: images only (by name and by bytes), the size limit,
the same image replaced in place, the default directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import imagebed
import pytest
from conftest import Api
from offline_kit import (
    DEFAULT_DIR,
    DISK_PROCESS,
    HTML,
    OSS_CREATE,
    OSS_PROCESS,
    Handler,
    Origin,
    failed,
    md5,
    origin_at,
    png_bytes,
    submit,
    succeeded,
)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_at() as running:
        yield running


def _listing(api: Api, parent: str = "") -> dict[str, dict[str, Any]]:
    page = api.ok("POST", imagebed.LIST, {"parentFileId": parent, "limit": 100, "type": 1})
    return {f["filename"]: f for f in page["fileList"]}


def _default_dir(api: Api) -> str:
    entry = _listing(api)[DEFAULT_DIR]
    assert entry["type"] == 1
    return str(entry["fileId"])


def test_an_image_lands_in_the_default_directory_and_is_served(
    offline_api: Api, origin: Origin
) -> None:
    data = png_bytes(1_200_000, b"oss-1")
    task_id = submit(offline_api, origin.file("/o1/cat.png", data), oss=True, type=1)
    state = succeeded(offline_api, task_id, oss=True)
    assert type(state["process"]) is int
    files = _listing(offline_api, _default_dir(offline_api))
    entry = files["cat.png"]
    assert entry["etag"] == md5(data) and entry["size"] == len(data)
    assert type(entry["fileId"]) is str
    assert httpx.get(entry["downloadURL"], timeout=30).content == data


def test_a_name_without_an_image_extension_gets_one_from_the_bytes(
    offline_api: Api, origin: Origin
) -> None:
    data = png_bytes(5_000, b"oss-2")
    folder = offline_api.ok("POST", imagebed.MKDIR, {"name": "shots", "parentID": ""})
    dir_id = folder["list"][0]["dirID"]
    task_id = submit(offline_api, origin.file("/o2/image", data), oss=True, businessDirID=dir_id)
    succeeded(offline_api, task_id, oss=True)
    assert set(_listing(offline_api, dir_id)) == {"image.png"}


def test_html_named_jpg_is_not_an_image(offline_api: Api, origin: Origin) -> None:
    url = origin.file("/o3/photo.jpg", HTML, headers={"Content-Type": "image/jpeg"})
    state = failed(offline_api, submit(offline_api, url, oss=True), oss=True)
    assert "not an image" in state["failReason"] and "HTML" in state["failReason"], state
    big_html = origin.file("/o3/big.jpg", HTML * 2000)  # decided before the whole body is in
    assert (
        "not an image"
        in failed(offline_api, submit(offline_api, big_html, oss=True), oss=True)["failReason"]
    )
    svg = (
        b'<?xml version="1.0"?>\n<!-- drawn by hand -->\n<svg xmlns="http://www.w3.org/2000/svg"/>'
    )
    succeeded(
        offline_api, submit(offline_api, origin.file("/o3/logo.svg", svg), oss=True), oss=True
    )


def test_too_large_fails_by_header_and_while_streaming(offline_api: Api, origin: Origin) -> None:
    # OPENPAN_OSS_MAX_FILE_SIZE is 3 MB on this server.
    big = png_bytes(3_500_000, b"oss-3")
    declared = failed(
        offline_api, submit(offline_api, origin.file("/o4/big.png", big), oss=True), oss=True
    )
    assert "too large" in declared["failReason"]

    def undeclared(h: Handler) -> None:
        # No Content-Length: the body ends when the connection does.
        h.send_response(200)
        h.send_header("Connection", "close")
        h.end_headers()
        for start in range(0, len(big), 256 * 1024):
            h.wfile.write(big[start : start + 256 * 1024])
        h.close_connection = True

    streamed = failed(
        offline_api,
        submit(offline_api, origin.route("/o4/stream.png", undeclared), oss=True),
        oss=True,
    )
    assert "too large" in streamed["failReason"]


def test_the_same_image_in_the_directory_is_replaced_in_place(
    offline_api: Api, origin: Origin
) -> None:
    folder = offline_api.ok("POST", imagebed.MKDIR, {"name": "album", "parentID": ""})
    dir_id = folder["list"][0]["dirID"]
    data = png_bytes(300_000, b"oss-4")
    existing = offline_api.oss_upload(data, "old.png", parent=dir_id)
    task_id = submit(
        offline_api, origin.file("/o5/x", data), oss=True, businessDirID=dir_id, fileName="new.png"
    )
    succeeded(offline_api, task_id, oss=True)
    files = _listing(offline_api, dir_id)
    assert list(files) == ["new.png"] and files["new.png"]["fileId"] == existing
    # Different bytes with a taken name: kept apart, not replaced.
    other = png_bytes(300_000, b"oss-5")
    task_id = submit(
        offline_api, origin.file("/o5/y", other), oss=True, businessDirID=dir_id, fileName="new.png"
    )
    succeeded(offline_api, task_id, oss=True)
    assert set(_listing(offline_api, dir_id)) == {"new.png", "new(1).png"}


BAD_CREATE = [
    ({"url": "http://example.com/a.png", "fileName": "a.txt"}, "fileName", 1),
    ({"url": "http://example.com/a.png", "fileName": "noext"}, "fileName", 1),
    ({"url": "http://example.com/a.png", "fileName": "a|b.png"}, "fileName", 1),
    ({"url": "http://example.com/a.png", "type": 2}, "type", 1),
    ({"url": "http://example.com/a.png", "type": "x"}, "type", 1),
    ({"url": "http://example.com/a.png", "businessDirID": "nope"}, "businessDirID", 5066),
    ({"url": "http://example.com/a.png", "businessDirID": "x" * 100}, "businessDirID", 1),
    ({"url": "http://example.com/a.png", "businessDirID": {"a": 1}}, "businessDirID", 1),
    ({"url": "mailto:a@b.c"}, "url", 1),
    ({"url": "http://169.254.169.254/latest/meta-data"}, "url", 1),
    ({}, "url", 1),
]


@pytest.mark.parametrize(("body", "field", "code"), BAD_CREATE)
def test_bad_input_is_refused_at_creation(
    offline_api: Api, body: dict[str, object], field: str, code: int
) -> None:
    envelope = offline_api.post(OSS_CREATE, body)
    assert envelope["code"] == code and envelope["data"] is None, envelope
    assert envelope["message"].startswith(field), envelope


def test_root_means_the_default_directory_and_other_users_are_apart(
    offline_api: Api, offline_other_api: Api, origin: Origin
) -> None:
    theirs = offline_other_api.ok("POST", imagebed.MKDIR, {"name": "theirs", "parentID": ""})
    their_dir = theirs["list"][0]["dirID"]
    url = origin.file("/o6/p.png", png_bytes(2_000, b"oss-6"))
    envelope = offline_api.post(OSS_CREATE, {"url": url, "businessDirID": their_dir})
    assert envelope["code"] == 5066 and envelope["message"].startswith("businessDirID")

    task_id = submit(offline_api, url, oss=True, businessDirID=0)  # a number, meaning the root
    succeeded(offline_api, task_id, oss=True)
    assert "p.png" in _listing(offline_api, _default_dir(offline_api))
    assert DEFAULT_DIR not in _listing(offline_other_api)
    # Another user's task, and an image-bed task asked for as a cloud-disk one: unknown.
    for api, path in ((offline_other_api, OSS_PROCESS), (offline_api, DISK_PROCESS)):
        envelope = api.get(path, {"taskID": task_id})
        assert envelope["code"] == 5066 and envelope["message"].startswith("taskID"), envelope


def test_a_disk_download_of_an_image_is_untouched_by_image_rules(
    offline_api: Api, origin: Origin
) -> None:
    data = os.urandom(10_000)
    task_id = submit(offline_api, origin.file("/o7/not-an-image.jpg", data))
    succeeded(offline_api, task_id)
