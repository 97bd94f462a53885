"""Crashes and time: kill -9 mid-upload, restarts, expiring sessions and presigned URLs."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
from conftest import Api, MiB, Server, jpeg_bytes
from imagebed import (
    ASYNC_RESULT,
    COMPLETE,
    DETAIL,
    UPLOAD_URL,
    chunk,
    create,
    listing,
    md5,
    parts,
    put,
    put_slice,
    query,
    slice_url,
    upload_dirs,
)


def restart(server: Server, api: Api, **env: str) -> Api:
    """Start ``server`` again (with ``env`` changes) and a client that keeps ``api``'s token."""
    server.env.update(env)
    server.start()
    again = Api.__new__(Api)
    again.server, again.creds, again.token = server, api.creds, api.token
    again.http = httpx.Client(base_url=server.url, timeout=60)
    api.close()
    return again


def fetch(api: Api, file_id: str) -> bytes:
    url = api.ok("GET", DETAIL, {"fileID": file_id})["downloadURL"]
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200
    return response.content


def wait_until(check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def test_kill_9_mid_uploads_loses_no_completed_file(fresh_server: Server) -> None:
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    completed: dict[str, bytes] = {}
    for size in (1000, 2 * MiB, 3 * MiB):  # one slice, two slices, completed in the background
        data = jpeg_bytes(size)
        completed[api.oss_upload(data, f"done-{size}.jpg")] = data
    # An upload with slices 1 and 3 of 3 in, and slice 2 cut off midway by the crash.
    partial = jpeg_bytes(2 * MiB + 777)
    pre = create(api, partial, "partial.jpg")["preuploadID"]
    for number in (1, 3):
        put_slice(api, pre, partial, number, MiB)
    url2 = slice_url(api, pre, 2)
    half_sent, killed = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield chunk(partial, 2, MiB)[: MiB // 2]
        half_sent.set()
        killed.wait(30)  # the server dies meanwhile
        yield chunk(partial, 2, MiB)[MiB // 2 :]

    def send_slowly() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.put(url2, content=slow_body(), timeout=60)

    sender = threading.Thread(target=send_slowly, daemon=True)
    sender.start()
    # A large upload whose verification runs as a job when the server dies.
    large = jpeg_bytes(12 * MiB)
    large_pre = create(api, large, "large.jpg")["preuploadID"]
    for number in range(1, 13):
        put_slice(api, large_pre, large, number, MiB)
    assert api.ok("POST", COMPLETE, {"preuploadID": large_pre})["async"] is True
    assert half_sent.wait(30)
    fresh_server.kill9()
    killed.set()
    sender.join(30)

    # Restarted with another slice size: uploads under way keep the one they were given.
    api = restart(fresh_server, api, OPENPAN_SLICE_SIZE=str(MiB // 2))
    try:
        for file_id, data in completed.items():
            assert fetch(api, file_id) == data
        # The crash cut slice 2 off: it does not count; the others are as they arrived.
        assert parts(api, pre) == [
            {
                "partNumber": str(n),
                "size": len(chunk(partial, n, MiB)),
                "etag": md5(chunk(partial, n, MiB)),
            }
            for n in (1, 3)
        ]
        # The upload goes on where it stopped, through a URL handed out before the crash.
        response = put(url2, chunk(partial, 2, MiB))
        assert response.status_code == 200, response.text
        done = api.ok("POST", COMPLETE, {"preuploadID": pre})
        partial_id = done["fileID"] if done["completed"] else api.wait_async(pre)
        assert fetch(api, partial_id) == partial
        large_id = api.wait_async(large_pre)
        assert fetch(api, large_id) == large
        names = sorted(e["filename"] for e in listing(api))
        assert names == sorted(
            [
                "done-1000.jpg",
                f"done-{2 * MiB}.jpg",
                f"done-{3 * MiB}.jpg",
                "partial.jpg",
                "large.jpg",
            ]
        )
        assert upload_dirs(fresh_server) == set()
    finally:
        api.close()


def cut_off_completion(server: Server, api: Api, pre: str) -> None:
    """``upload_complete`` of ``pre`` dies after the session was marked as being verified, as
    a crash at that moment would leave it (the database fails under the verification), then
    the server is killed; the database is whole again for the restart."""
    query(server, "ALTER TABLE blobs RENAME TO blobs_elsewhere")
    answer = api.post(COMPLETE, {"preuploadID": pre})
    assert answer["code"] == 1 and answer["data"] is None
    server.kill9()
    query(server, "ALTER TABLE blobs_elsewhere RENAME TO blobs")


def test_a_completion_cut_off_in_the_request_is_finished_after_restart(
    fresh_server: Server,
) -> None:
    fresh_server.env.update(OPENPAN_PRESIGN_TTL="60")
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    data = jpeg_bytes(MiB + 5)
    pre = create(api, data, "interrupted.jpg")["preuploadID"]
    for number in (1, 2):
        put_slice(api, pre, data, number, MiB)
    waiting = jpeg_bytes(1000)
    waiting_pre = create(api, waiting, "waiting.jpg")["preuploadID"]
    old_url = slice_url(api, waiting_pre, 1)
    cut_off_completion(fresh_server, api, pre)
    # Two minutes on, so nothing waits for a request that will never come back.
    api = restart(fresh_server, api, OPENPAN_CLOCK_OFFSET="120")
    try:
        again = api.ok("POST", COMPLETE, {"preuploadID": pre})
        assert again["completed"] or again["async"]
        file_id = api.wait_async(pre)
        assert fetch(api, file_id) == data
        assert [e["fileId"] for e in listing(api)] == [file_id]
        # Two minutes on, a presigned URL of one minute has expired; its session has not.
        expired = put(old_url, waiting)
        assert expired.status_code == 403 and "expires" in expired.json()["message"]
        assert parts(api, waiting_pre) == []
        put_slice(api, waiting_pre, waiting, 1, MiB)
        assert api.ok("POST", COMPLETE, {"preuploadID": waiting_pre})["completed"] is True
    finally:
        api.close()


def test_a_cut_off_completion_is_finished_within_seconds_of_the_restart(
    fresh_server: Server,
) -> None:
    """No clock moved on this time: the restart itself finishes what was in flight, rather
    than the backup job a minute later."""
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    data = jpeg_bytes(MiB + 77)
    pre = create(api, data, "cut.jpg")["preuploadID"]
    for number in (1, 2):
        put_slice(api, pre, data, number, MiB)
    cut_off_completion(fresh_server, api, pre)
    api = restart(fresh_server, api)
    try:
        started = time.monotonic()
        while not api.ok("POST", ASYNC_RESULT, {"preuploadID": pre})["completed"]:
            assert time.monotonic() - started < 20, "still verifying 20 s after the restart"
            time.sleep(0.2)
        file_id = api.ok("POST", ASYNC_RESULT, {"preuploadID": pre})["fileID"]
        assert fetch(api, file_id) == data
    finally:
        api.close()


def test_abandoned_sessions_expire_and_their_slices_go(fresh_server: Server) -> None:
    fresh_server.env.update(OPENPAN_UPLOAD_SESSION_TTL="3600")
    fresh_server.start()
    api = fresh_server.client(fresh_server.take_user())
    kept = jpeg_bytes(5000)
    kept_id = api.oss_upload(kept, "kept.jpg")
    data = jpeg_bytes(MiB + 10)
    pre = create(api, data, "abandoned.jpg")["preuploadID"]
    put_slice(api, pre, data, 1, MiB)
    old_url = slice_url(api, pre, 2)
    # Slices no session owns (left by a crash between the two) are swept away.
    orphan = fresh_server.data_dir / "blobs" / "uploads" / "orphan-upload"
    (orphan / "parts").mkdir(parents=True)
    (orphan / "data").write_bytes(b"left behind")
    wait_until(lambda: not orphan.exists())
    second = jpeg_bytes(300)
    other_pre = create(api, second, "also-abandoned.jpg")["preuploadID"]
    put_slice(api, other_pre, second, 1, MiB)
    assert upload_dirs(fresh_server) == {pre, other_pre}
    fresh_server.stop()

    # Past the sessions' life, they and their slices go.
    api = restart(fresh_server, api, OPENPAN_CLOCK_OFFSET=str(3600 + 60))
    try:
        wait_until(lambda: upload_dirs(fresh_server) == set())
        for upload in (pre, other_pre):
            for path, extra in [
                (UPLOAD_URL, {"sliceNo": 1}),
                ("/upload/v1/oss/file/list_upload_parts", {}),
                (COMPLETE, {}),
                (ASYNC_RESULT, {}),
            ]:
                answer = api.post(path, {"preuploadID": upload, **extra})
                assert answer["code"] == 5066 and "preuploadID" in answer["message"], answer
        refused = put(old_url, chunk(data, 2, MiB))
        assert refused.status_code in (403, 404) and refused.json()["code"] != 0
        assert [e["filename"] for e in listing(api)] == ["kept.jpg"]
        assert fetch(api, kept_id) == kept
        # The name is free for a new upload.
        assert api.oss_upload(data, "abandoned.jpg")
    finally:
        api.close()
