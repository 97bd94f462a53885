"""Copy tasks: cloud-disk images into an image-bed directory, sharing bytes; the limits, the
waiting queue of three, the failure list, and a restart in the middle of a task."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pgdb
from conftest import Api, Server, jpeg_bytes
from diskkit import COPY, COPY_FAIL, COPY_PROCESS, TRASH, mkdir, upload_v1

OSS_MKDIR = "/upload/v1/oss/file/mkdir"
OSS_LIST = "/api/v1/oss/file/list"


def oss_dir(api: Api, name: str) -> str:
    made = api.ok("POST", OSS_MKDIR, {"name": name, "parentID": "", "type": 1})
    dir_id: str = made["list"][0]["dirID"]
    return dir_id


def oss_files(api: Api, dir_id: str) -> list[dict[str, Any]]:
    page = api.ok("POST", OSS_LIST, {"parentFileId": dir_id, "limit": 100, "type": 1})
    assert page["lastFileId"] == "-1"
    files: list[dict[str, Any]] = page["fileList"]
    return files


def copy(api: Api, file_ids: list[int], target: str) -> str:
    answer = api.ok(
        "POST",
        COPY,
        {
            "fileIDs": [str(i) for i in file_ids],
            "toParentFileID": target,
            "sourceType": 1,
            "type": 1,
        },
    )
    task_id: str = answer["taskID"]
    assert isinstance(task_id, str) and task_id
    return task_id


def status(api: Api, task_id: str) -> dict[str, Any]:
    state: dict[str, Any] = api.ok("GET", COPY_PROCESS, {"taskID": task_id})
    return state


def wait_done(api: Api, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = status(api, task_id)
        if state["status"] in (2, 3):
            return state
        time.sleep(0.1)
    raise AssertionError(f"copy task {task_id} did not finish: {status(api, task_id)}")


def blob_files(server: Server) -> int:
    return sum(1 for p in (server.data_dir / "blobs").rglob("*") if p.is_file())


def test_copy_images_recursively_sharing_bytes(api: Api, server: Server) -> None:
    top = mkdir(api, "photos")
    images = {"a.jpg": jpeg_bytes(5000), "b.png": jpeg_bytes(6000)}
    upload_v1(api, images["a.jpg"], "a.jpg", top)
    upload_v1(api, b"not an image", "notes.txt", top)  # skipped quietly inside a directory
    level = top
    for depth in range(2, 17):  # photos is level 1; level 15 is the deepest copied
        level = mkdir(api, f"level{depth}", level)
        if depth in (2, 15, 16):
            data = jpeg_bytes(1000 + depth)
            images[f"deep{depth}.webp"] = data
            upload_v1(api, data, f"deep{depth}.webp", level)
    named = upload_v1(api, images["b.png"], "b.png")
    text = upload_v1(api, b"plain", "readme.md")
    trashed_dir = mkdir(api, "trashed", top)
    upload_v1(api, jpeg_bytes(700), "hidden.jpg", trashed_dir)
    api.ok("POST", TRASH, {"fileIDs": [trashed_dir]})
    target = oss_dir(api, "from-disk")
    before = blob_files(server)
    task = copy(api, [top, named, text], target)
    assert wait_done(api, task) == {"status": 2, "failMsg": ""}
    assert blob_files(server) == before  # no bytes copied
    copied = {f["filename"]: f for f in oss_files(api, target)}
    assert set(copied) == {"a.jpg", "b.png", "deep2.webp", "deep15.webp"}
    for name, item in copied.items():
        assert item["size"] == len(images[name])
        assert httpx.get(item["downloadURL"]).content == images[name]
    failed = api.ok("GET", COPY_FAIL, {"taskID": task, "limit": 100, "page": 1})
    reasons = {f["filename"]: f["failMsg"] for f in failed["list"]}
    assert failed["total"] == 2 and set(reasons) == {"readme.md", "level16"}
    assert all(isinstance(f["fileId"], int) for f in failed["list"])
    assert "15" in reasons["level16"] and reasons["readme.md"]
    paged = api.ok("GET", COPY_FAIL, {"taskID": task, "limit": 1, "page": 2})
    assert paged["total"] == 2 and len(paged["list"]) == 1
    # The same images again: replaced in place (same fileId), nothing duplicated.
    again = copy(api, [top, named], target)
    assert wait_done(api, again)["status"] == 2
    assert {f["filename"]: f["fileId"] for f in oss_files(api, target)} == {
        n: f["fileId"] for n, f in copied.items()
    }
    # The image-bed copy outlives the cloud-disk file (the blob is shared, counted).
    api.ok("POST", TRASH, {"fileIDs": [named]})
    api.ok("POST", "/api/v1/file/delete", {"fileIDs": [named]})
    assert httpx.get(copied["b.png"]["downloadURL"]).content == images["b.png"]


def test_same_name_other_image_keeps_both(api: Api) -> None:
    target = oss_dir(api, "clash")
    api.oss_upload(jpeg_bytes(3000), "same.jpg", parent=target)
    disk_file = upload_v1(api, jpeg_bytes(3100), "same.jpg")
    assert wait_done(api, copy(api, [disk_file], target))["status"] == 2
    assert {f["filename"] for f in oss_files(api, target)} == {"same.jpg", "same(1).jpg"}


def test_copy_refuses_bad_requests(api: Api, other_api: Api) -> None:
    image = upload_v1(api, jpeg_bytes(100), "x.jpg")
    target = oss_dir(api, "t")
    theirs_dir = oss_dir(other_api, "theirs")
    theirs_file = upload_v1(other_api, jpeg_bytes(100), "y.jpg")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"toParentFileID": target}, 1, "fileIDs"),
        ({"fileIDs": [], "toParentFileID": target}, 1, "fileIDs"),
        ({"fileIDs": list(range(1, 102)), "toParentFileID": target}, 1, "fileIDs"),
        ({"fileIDs": ["abc"], "toParentFileID": target}, 1, "fileIDs"),
        ({"fileIDs": [{"id": 1}], "toParentFileID": target}, 1, "fileIDs"),
        ({"fileIDs": [-5], "toParentFileID": target}, 1, "fileIDs"),
        ({"fileIDs": [image], "toParentFileID": target, "sourceType": 2}, 1, "sourceType"),
        ({"fileIDs": [image], "toParentFileID": target, "type": 7}, 1, "type"),
        ({"fileIDs": [image], "toParentFileID": "nope"}, 5066, "toParentFileID"),
        ({"fileIDs": [image], "toParentFileID": theirs_dir}, 5066, "toParentFileID"),
        ({"fileIDs": [image], "toParentFileID": "x" * 5000}, 1, "toParentFileID"),
        ({"fileIDs": [theirs_file], "toParentFileID": target}, 5066, "fileIDs"),
        ({"fileIDs": [987654321], "toParentFileID": target}, 5066, "fileIDs"),
    ]
    for body, code, field in cases:
        answer = api.post(COPY, body)
        assert answer["code"] == code and answer["message"].startswith(field), (body, answer)
        assert answer["data"] is None
    task = copy(api, [image], target)
    wait_done(api, task)
    assert other_api.get(COPY_PROCESS, {"taskID": task})["code"] == 5066
    assert other_api.get(COPY_FAIL, {"taskID": task, "limit": 10, "page": 1})["code"] == 5066
    assert api.get(COPY_PROCESS, {"taskID": "nope"})["code"] == 5066
    assert api.get(COPY_PROCESS, {})["message"].startswith("taskID")
    assert api.get(COPY_FAIL, {"taskID": task, "limit": 101, "page": 1})["code"] == 1
    assert api.get(COPY_FAIL, {"taskID": task, "limit": 10, "page": 0})["code"] == 1


def test_more_than_a_thousand_images_fails_the_task(api: Api, server: Server) -> None:
    folder = mkdir(api, "huge")
    seed = upload_v1(api, jpeg_bytes(200), "seed.jpg", folder)
    # 1000 more images sharing seed's bytes, written straight into the database: uploading
    # them one by one would only make the test slow.
    with pgdb.connect(server.env, server.data_dir) as db:
        row = db.execute(
            "SELECT user_id, blob_id, size, etag, created_at FROM files WHERE id = ?", (seed,)
        ).fetchone()
        user_id, blob_id, size, etag, created = row
        db.executemany(
            "INSERT INTO files (user_id, space, parent_id, name, is_dir, blob_id, size, etag, ext,"
            " status, trashed, total_traffic, created_at, updated_at)"
            " VALUES (?, 'disk', ?, ?, false, ?, ?, ?, 'jpg', 2, false, 0, ?, ?)",
            [
                (user_id, folder, f"img{i}.jpg", blob_id, size, etag, created, created)
                for i in range(1000)
            ],
        )
        db.execute("UPDATE blobs SET refcount = refcount + 1000 WHERE id = ?", (blob_id,))
    target = oss_dir(api, "too-many")
    state = wait_done(api, copy(api, [folder], target))
    assert state["status"] == 3 and "1000" in state["failMsg"]
    assert oss_files(api, target) == []


def test_queue_of_three_and_a_restart_mid_task(fresh_server: Server) -> None:
    fresh_server.env.update(
        OPENPAN_COPY_BATCH_SIZE="1",
        OPENPAN_COPY_BATCH_PAUSE="0.15",
        OPENPAN_OSS_MAX_FILE_SIZE="5000",
    )
    fresh_server.start()
    creds = fresh_server.add_user()
    api = fresh_server.client(creds)
    try:
        folder = mkdir(api, "src")
        for i in range(5):
            upload_v1(api, jpeg_bytes(1000 + i), f"p{i}.jpg", folder)
        big = upload_v1(api, jpeg_bytes(5001), "big.png", folder)
        targets = [oss_dir(api, f"t{i}") for i in range(3)]
        tasks = [copy(api, [folder], target) for target in targets]
        assert status(api, tasks[0])["status"] in (1, 4)
        assert [status(api, t)["status"] for t in tasks[1:]] == [4, 4]
        fourth = api.post(
            COPY, {"fileIDs": [folder], "toParentFileID": targets[0], "sourceType": 1, "type": 1}
        )
        assert fourth["code"] == 1 and "3" in fourth["message"] and fourth["data"] is None
        deadline = time.monotonic() + 30
        while len(oss_files(api, targets[0])) < 2:
            assert time.monotonic() < deadline, "the first task copied nothing"
            time.sleep(0.05)
        assert status(api, tasks[0])["status"] == 1
    finally:
        api.close()
    fresh_server.kill9()
    fresh_server.start()
    api = fresh_server.client(creds)
    try:
        for task in tasks:
            assert wait_done(api, task) == {"status": 2, "failMsg": ""}
        for target in targets:
            names = sorted(f["filename"] for f in oss_files(api, target))
            assert names == [f"p{i}.jpg" for i in range(5)]
        failed = api.ok("GET", COPY_FAIL, {"taskID": tasks[0], "limit": 10, "page": 1})
        assert [f["fileId"] for f in failed["list"]] == [big] and failed["total"] == 1
        assert "5000" in failed["list"][0]["failMsg"]
        # Finished tasks free their places in the queue.
        assert wait_done(api, copy(api, [folder], targets[1]))["status"] == 2
    finally:
        api.close()
