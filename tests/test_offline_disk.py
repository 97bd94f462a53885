"""Offline downloads into the cloud disk: every way a task ends, names, retries, resume."""

from __future__ import annotations

import os
from collections.abc import Iterator

import diskkit
import pytest
from conftest import Api, Server
from imagebed import blob_files, query
from offline_kit import (
    DEFAULT_DIR,
    DISK_CREATE,
    DISK_PROCESS,
    Handler,
    Origin,
    failed,
    md5,
    origin_at,
    process,
    submit,
    succeeded,
    wait,
)


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    with origin_at() as running:
        yield running


def _default_dir(api: Api) -> int:
    entry = diskkit.names(api)[DEFAULT_DIR]
    assert entry["type"] == 1
    return int(entry["fileId"])


def test_download_lands_in_the_default_directory_named_after_the_url(
    offline_api: Api, origin: Origin
) -> None:
    data = os.urandom(1_500_000)
    url = origin.file("/d1/report%20final.pdf", data)
    task_id = submit(offline_api, url)
    state = succeeded(offline_api, task_id)
    assert type(state["process"]) is float and state["failReason"] == ""
    folder = _default_dir(offline_api)
    entry = diskkit.names(offline_api, folder)["report final.pdf"]
    assert entry["size"] == len(data) and entry["etag"] == md5(data)
    assert diskkit.download(offline_api, int(entry["fileId"])) == data
    assert state["fileID"] == int(entry["fileId"])  # openpan's extra: the file it made
    # Asked for plainly: no compression, the whole resource.
    seen = origin.requests("/d1/report%20final.pdf")[-1]
    assert seen.headers.get("accept-encoding") == "identity" and "range" not in seen.headers


def test_given_names_stay_unique_and_any_file_type_is_taken(
    offline_api: Api, origin: Origin
) -> None:
    folder = diskkit.mkdir(offline_api, "videos")
    first, second = os.urandom(70_000), os.urandom(80_000)
    a = submit(offline_api, origin.file("/d2/1", first), fileName="clip.mp4", dirID=folder)
    succeeded(offline_api, a)
    # dirID as a string, as some clients send it.
    b = submit(offline_api, origin.file("/d2/2", second), fileName="clip.mp4", dirID=str(folder))
    succeeded(offline_api, b)
    names = diskkit.names(offline_api, folder)
    assert set(names) == {"clip.mp4", "clip(1).mp4"}
    assert diskkit.download(offline_api, int(names["clip(1).mp4"]["fileId"])) == second


def test_name_from_content_disposition_made_safe(offline_api: Api, origin: Origin) -> None:
    data = os.urandom(10_000)
    plain = origin.file(
        "/d3/dl",
        data,
        headers={"Content-Disposition": "attachment; filename*=UTF-8''%E6%B5%8B%E8%AF%95.txt"},
    )
    hostile = origin.file(
        "/d3/evil",
        data + b"x",
        headers={"Content-Disposition": 'attachment; filename="../../etc/pa:ss?wd"'},
    )
    nameless = origin.file("/d3/", data + b"yy")
    for url in (plain, hostile, nameless):
        succeeded(offline_api, submit(offline_api, url))
    names = diskkit.names(offline_api, _default_dir(offline_api))
    assert {"测试.txt", "pa_ss_wd", "download"} <= set(names)


def test_missing_file_and_forbidden_fail_at_once_with_a_reason(
    offline_api: Api, origin: Origin
) -> None:
    for code in (404, 403, 410):
        url = origin.status(f"/d4/{code}", code)
        state = failed(offline_api, submit(offline_api, url))
        assert str(code) in state["failReason"] and state["fileID"] == 0, state
        assert len(origin.requests(f"/d4/{code}")) == 1  # permanent: never retried


def test_transient_errors_are_retried_with_status_3_then_succeed(
    offline_api: Api, origin: Origin
) -> None:
    data = os.urandom(300_000)
    calls = {"n": 0}

    def busy_then_ok(h: Handler) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            # Retry-After keeps the task visibly waiting (status 3) long enough to be seen.
            h.send_plain(503, b"busy", {"Retry-After": "1"})
        else:
            h.send_file(data)

    task_id = submit(offline_api, origin.route("/d5/busy", busy_then_ok))
    retrying = wait(offline_api, task_id, until=lambda p: p["status"] == 3)
    assert "503" in retrying["failReason"]
    succeeded(offline_api, task_id)
    assert calls["n"] == 3
    folder = _default_dir(offline_api)
    assert diskkit.names(offline_api, folder)["busy"]["etag"] == md5(data)


def test_transient_errors_give_up_after_the_retries(offline_api: Api, origin: Origin) -> None:
    url = origin.status("/d6/down", 502)
    state = failed(offline_api, submit(offline_api, url))
    assert "502" in state["failReason"]
    assert len(origin.requests("/d6/down")) == 4  # the first try and OPENPAN_OFFLINE_RETRIES=3


def test_a_cut_connection_resumes_with_range(offline_api: Api, origin: Origin) -> None:
    data = os.urandom(3_000_000)
    url = origin.flaky("/d7/cut.bin", data, failures=1, how="reset")
    succeeded(offline_api, submit(offline_api, url))
    first, second = origin.requests("/d7/cut.bin")
    assert "range" not in first.headers
    start = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= 1_000_000
    entry = diskkit.names(offline_api, _default_dir(offline_api))["cut.bin"]
    assert diskkit.download(offline_api, int(entry["fileId"])) == data


def test_an_origin_without_ranges_is_read_again_from_the_start(
    offline_api: Api, origin: Origin
) -> None:
    data = os.urandom(2_000_000)
    calls = {"n": 0}

    def no_ranges(h: Handler) -> None:
        calls["n"] += 1
        h.send_file(data, ranges=False, stop_after=500_000 if calls["n"] == 1 else None)

    succeeded(offline_api, submit(offline_api, origin.route("/d8/whole.bin", no_ranges)))
    # The second answer, the whole file despite the Range asked for, is used from its start.
    assert calls["n"] == 2 and "range" in origin.requests("/d8/whole.bin")[1].headers
    entry = diskkit.names(offline_api, _default_dir(offline_api))["whole.bin"]
    assert entry["etag"] == md5(data)
    assert diskkit.download(offline_api, int(entry["fileId"])) == data


def test_a_content_length_lie_is_caught(offline_api: Api, origin: Origin) -> None:
    def liar(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "200000")
        h.end_headers()
        h.wfile.write(b"x" * 50_000)
        h.close_connection = True

    state = failed(offline_api, submit(offline_api, origin.route("/d9/liar", liar)))
    assert "Content-Length" in state["failReason"] and "50000" in state["failReason"], state
    assert DEFAULT_DIR not in diskkit.names(offline_api) or "liar" not in diskkit.names(
        offline_api, _default_dir(offline_api)
    )


def test_redirects_are_followed_up_to_the_limit(offline_api: Api, origin: Origin) -> None:
    data = os.urandom(20_000)
    origin.file("/d10/target.bin", data)
    hop = origin.redirect("/d10/hop1", origin.url("/d10/target.bin"), 301)
    hop = origin.redirect("/d10/hop2", "/d10/hop1", 307)  # relative Location
    succeeded(offline_api, submit(offline_api, hop))
    names = diskkit.names(offline_api, _default_dir(offline_api))
    assert names["hop2"]["etag"] == md5(data)  # named after the URL asked for

    loop = origin.redirect("/d10/loop", "/d10/loop")
    state = failed(offline_api, submit(offline_api, loop))
    assert "redirect" in state["failReason"]
    ftp = origin.redirect("/d10/ftp", "ftp://127.0.0.1/file")
    assert "ftp" in failed(offline_api, submit(offline_api, ftp))["failReason"]


def test_a_target_directory_deleted_meanwhile_fails_the_task(
    offline_server: Server, offline_api: Api, origin: Origin
) -> None:
    folder = diskkit.mkdir(offline_api, "soon-gone")
    data = os.urandom(400_000)
    url = origin.file("/d11/slow.bin", data, rate=400_000)
    task_id = submit(offline_api, url, dirID=folder)
    offline_api.ok("POST", diskkit.TRASH, {"fileIDs": [folder]})
    state = failed(offline_api, task_id)
    assert "目标目录" in state["failReason"]
    # The bytes were stored before the file could not be made: they are gone again.
    assert blob_files(offline_server, md5(data)) == []
    assert query(offline_server, "SELECT id FROM blobs WHERE md5 = ?", md5(data)) == []


def test_the_same_bytes_downloaded_twice_are_stored_once(
    offline_server: Server, offline_api: Api, origin: Origin
) -> None:
    data = os.urandom(300_000)
    for path in ("/d14/a.bin", "/d14/b.bin"):
        succeeded(offline_api, submit(offline_api, origin.file(path, data)))
    names = diskkit.names(offline_api, _default_dir(offline_api))
    for name in ("a.bin", "b.bin"):
        assert diskkit.download(offline_api, int(names[name]["fileId"])) == data
    assert len(blob_files(offline_server, md5(data))) == 1
    assert query(offline_server, "SELECT refcount FROM blobs WHERE md5 = ?", md5(data)) == [(2,)]


BAD_CREATE = [
    ({}, "url"),
    ({"url": ""}, "url"),
    ({"url": 12}, "url"),
    ({"url": ["http://a/b", "http://a/c"]}, "url"),
    ({"url": {"x": 1}}, "url"),
    ({"url": "ftp://example.com/a"}, "url"),
    ({"url": "file:///etc/passwd"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "http://exa mple.com/a"}, "url"),
    ({"url": "http://example.com/\x00"}, "url"),
    ({"url": "http://[::1"}, "url"),
    ({"url": "http://[::1]@example.com/a"}, "url"),  # a bracketed address as the user part
    ({"url": "http://[::1]:80@example.com/a"}, "url"),
    ({"url": "http://xn--/a"}, "url"),  # a malformed IDNA name
    ({"url": "http://example.com:99999/a"}, "url"),
    ({"url": "http://example.com/a", "callBackUrl": "http://xn--a.com/"}, "callBackUrl"),
    ({"url": "http://example.com/" + "a" * 5000}, "url"),
    ({"url": "http://example.com/a", "fileName": "a/b.txt"}, "fileName"),
    ({"url": "http://example.com/a", "fileName": 'a"b'}, "fileName"),
    ({"url": "http://example.com/a", "fileName": "x" * 300}, "fileName"),
    ({"url": "http://example.com/a", "fileName": "   "}, "fileName"),
    ({"url": "http://example.com/a", "fileName": {"a": 1}}, "fileName"),
    ({"url": "http://example.com/a", "dirID": "abc"}, "dirID"),
    ({"url": "http://example.com/a", "dirID": -1}, "dirID"),
    ({"url": "http://example.com/a", "dirID": 2**70}, "dirID"),
    ({"url": "http://example.com/a", "dirID": True}, "dirID"),
    ({"url": "http://example.com/a", "callBackUrl": "not a url"}, "callBackUrl"),
    ({"url": "http://example.com/a", "callBackUrl": "gopher://x/"}, "callBackUrl"),
    ({"url": "http://example.com/a", "callBackUrl": "http://10.1.2.3/hook"}, "callBackUrl"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATE)
def test_bad_input_is_refused_at_creation_naming_the_field(
    offline_api: Api, body: dict[str, object], field: str
) -> None:
    envelope = offline_api.post(DISK_CREATE, body)
    assert envelope["code"] == 1 and envelope["data"] is None, envelope
    assert envelope["message"].startswith(field), envelope


def test_another_users_directory_and_task_are_unknown(
    offline_api: Api, offline_other_api: Api, origin: Origin
) -> None:
    theirs = diskkit.mkdir(offline_other_api, "private")
    for target in (theirs, 987654321):
        envelope = offline_api.post(DISK_CREATE, {"url": origin.url("/x"), "dirID": target})
        assert envelope["code"] == 5066 and envelope["message"].startswith("dirID"), envelope
    file_id = diskkit.upload_v1(offline_api, b"not a dir", "plain.txt")
    envelope = offline_api.post(DISK_CREATE, {"url": origin.url("/x"), "dirID": file_id})
    assert envelope["code"] == 5066, envelope

    task_id = submit(offline_other_api, origin.file("/d12/theirs", b"theirs"))
    mine = offline_api.get(DISK_PROCESS, {"taskID": task_id})
    unknown = offline_api.get(DISK_PROCESS, {"taskID": 2**62})
    assert mine["code"] == unknown["code"] == 5066 and mine["data"] is None
    assert mine["message"].replace(str(task_id), "N") == unknown["message"].replace(str(2**62), "N")
    assert process(offline_other_api, task_id)["status"] in (0, 2, 3)
    for bad in ({}, {"taskID": "abc"}, {"taskID": 1.5}, {"taskID": ["1", "2"]}):
        envelope = offline_api.get(DISK_PROCESS, bad)
        assert envelope["code"] == 1 and envelope["message"].startswith("taskID"), envelope


def test_a_download_past_the_users_space_fails(
    offline_server: Server, offline_api: Api, origin: Origin
) -> None:
    done = offline_server.cli("user", "set", offline_api.creds["name"], "--quota", "150000")
    assert done.returncode == 0, done.stderr
    fits = origin.file("/d13/fits.bin", os.urandom(100_000))
    succeeded(offline_api, submit(offline_api, fits))
    too_big = origin.file("/d13/too-big.bin", os.urandom(100_000))
    state = failed(offline_api, submit(offline_api, too_big))
    assert "space" in state["failReason"], state
    assert "too-big.bin" not in diskkit.names(offline_api, _default_dir(offline_api))
