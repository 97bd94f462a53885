"""The SDK's public surface and one method per endpoint, against a real server."""

from __future__ import annotations

import hashlib
import inspect
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sdkkit
from conftest import MiB, Server, jpeg_bytes

import openpan.client as sdk
from openpan.client import (
    APIError,
    AsyncClient,
    Client,
    CopyStatus,
    NotFoundError,
    OfflineStatus,
    StillVerifyingError,
)

PUBLIC = {
    "APIError",
    "AccessToken",
    "AsyncClient",
    "AsyncCopyTask",
    "AsyncOfflineTask",
    "AuthenticationError",
    "Client",
    "ClientError",
    "CopyFailure",
    "CopyFailures",
    "CopyProgress",
    "CopyStatus",
    "CopyTask",
    "DirUpload",
    "DiskFile",
    "DiskPage",
    "DiskPageV1",
    "Download",
    "DownloadError",
    "DownloadInfo",
    "IfExists",
    "ImageInfo",
    "NotFoundError",
    "OfflineProgress",
    "OfflineStatus",
    "OfflineTask",
    "OssDir",
    "OssFile",
    "OssPage",
    "RateLimitError",
    "RenameResult",
    "Space",
    "StillVerifyingError",
    "TaskFailed",
    "TrafficExceededError",
    "TransportError",
    "UploadCompleted",
    "UploadCreated",
    "UploadError",
    "UploadFailure",
    "UploadPart",
    "UploadResult",
    "UploadURL",
    "UploadedFile",
    "UserInfo",
    "WaitTimeout",
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def pan(server: Server, tmp_path: Path) -> Iterator[Client]:
    with sdkkit.client(server, tmp_path) as client:
        yield client


# The public surface ------------------------------------------------------------------------


def test_public_names_are_exactly_the_intended_ones() -> None:
    assert set(sdk.__all__) == PUBLIC
    # ("@py_…": pytest's assertion rewriting, when it rewrites the installed package.)
    assert {name for name in dir(sdk) if not name.startswith(("_", "@"))} == PUBLIC


def test_every_exported_error_descends_from_one_root() -> None:
    errors = [getattr(sdk, n) for n in PUBLIC if n.endswith(("Error", "Failed", "Timeout"))]
    assert errors and all(issubclass(e, sdk.ClientError) for e in errors)
    for cls in (
        sdk.AuthenticationError,
        sdk.RateLimitError,
        sdk.NotFoundError,
        sdk.TrafficExceededError,
        sdk.StillVerifyingError,
    ):
        assert issubclass(cls, sdk.APIError)


def _methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in ("close", "aclose")
    }


@pytest.mark.parametrize(
    ("sync", "async_"),
    [
        (Client, AsyncClient),
        (sdk.OfflineTask, sdk.AsyncOfflineTask),
        (sdk.CopyTask, sdk.AsyncCopyTask),
    ],
)
def test_async_twin_has_the_same_methods_and_parameters(sync: type, async_: type) -> None:
    blocking, awaited = _methods(sync), _methods(async_)
    assert set(blocking) == set(awaited)
    for name, signature in blocking.items():
        twin = awaited[name]
        assert list(signature.parameters) == list(twin.parameters), name
        for param in signature.parameters.values():
            other = twin.parameters[param.name]
            assert (param.kind, param.default) == (other.kind, other.default), (name, param)
        member = getattr(async_, name)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name


def test_a_client_needs_credentials_and_an_http_url() -> None:
    with pytest.raises(ValueError, match="access_token"):
        Client(base_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="base_url"):
        Client(base_url="127.0.0.1:8123", access_token="x")
    with pytest.raises(ValueError, match="together"):
        Client(base_url="http://127.0.0.1:1", client_id="a", access_token="x")


# Image bed ----------------------------------------------------------------------------------


def test_image_bed_endpoints_round_trip(pan: Client) -> None:
    album, other = pan.oss_mkdir(["album", "other"])
    assert (album.filename, other.filename) == ("album", "other")
    assert isinstance(album.dir_id, str) and album.dir_id
    single = pan.oss_mkdir("single", parent_id=album.dir_id)
    assert [d.filename for d in single] == ["single"]

    data = jpeg_bytes(2 * MiB + 500_000)  # three slices, verified asynchronously
    created = pan.oss_create(album.dir_id, "photo.jpg", md5(data), len(data))
    assert created.reuse is False and created.preupload_id and created.slice_size == MiB
    for number in (1, 2, 3):
        url = pan.oss_get_upload_url(created.preupload_id, number)
        assert url.presigned_url.startswith("http")
        chunk = data[(number - 1) * MiB : number * MiB]
        assert httpx.put(url.presigned_url, content=chunk).status_code == 200
    parts = pan.oss_list_upload_parts(created.preupload_id)
    assert [p.part_number for p in parts] == [1, 2, 3]
    assert [p.etag for p in parts] == [md5(data[i * MiB : (i + 1) * MiB]) for i in range(3)]
    done = pan.oss_upload_complete(created.preupload_id)
    file_id = done.file_id
    if not done.completed:
        assert done.is_async
        deadline = time.monotonic() + 60
        while not (result := pan.oss_upload_async_result(created.preupload_id)).completed:
            assert time.monotonic() < deadline
            time.sleep(0.3)
        file_id = result.file_id
    assert isinstance(file_id, str) and file_id

    detail = pan.oss_detail(file_id)
    assert (detail.filename, detail.size, detail.etag) == ("photo.jpg", len(data), md5(data))
    assert detail.parent_file_id == album.dir_id and not detail.is_dir
    assert httpx.get(detail.link).content == data

    again = pan.oss_create("", "again.jpg", md5(data), len(data))
    assert again.reuse is True and again.file_id and again.file_id != file_id

    page = pan.oss_list(album.dir_id, limit=1)
    assert len(page.files) == 1 and not page.is_last
    rest = pan.oss_list(album.dir_id, limit=100, last_file_id=page.last_file_id)
    assert rest.is_last and rest.last_file_id == "-1"
    assert {f.filename for f in page.files + rest.files} == {"single", "photo.jpg"}

    pan.oss_move([file_id], other.dir_id)
    assert [f.filename for f in pan.oss_list(other.dir_id).files] == ["photo.jpg"]
    pan.oss_delete([album.dir_id, other.dir_id])
    with pytest.raises(NotFoundError) as caught:
        pan.oss_detail(file_id)
    assert caught.value.code == 5066 and caught.value.message and caught.value.trace_id
    assert caught.value.trace_id in str(caught.value)


def test_another_users_ids_are_like_unknown_ones(server: Server, tmp_path: Path) -> None:
    with sdkkit.client(server, tmp_path) as alice, sdkkit.client(server, tmp_path) as bob:
        [folder] = alice.oss_mkdir("mine")
        with pytest.raises(NotFoundError):
            bob.oss_detail(folder.dir_id)
        with pytest.raises(APIError) as moved:
            bob.oss_move([folder.dir_id], "")
        assert moved.value.code in (1, 5066)
        assert alice.oss_detail(folder.dir_id).filename == "mine"


def test_api_errors_carry_code_message_and_trace(pan: Client) -> None:
    with pytest.raises(APIError) as caught:
        pan.oss_create("", "not-an-image.txt", "0" * 32, 10)
    error = caught.value
    assert error.code == 1 and "filename" in error.message and error.trace_id


# Cloud disk -----------------------------------------------------------------------------------

DISK = (
    "/upload/v1/file/mkdir",
    "/upload/v1/file/create",
    "/api/v2/file/list",
    "/api/v1/file/list",
    "/api/v1/file/detail",
    "/api/v1/file/infos",
    "/api/v1/file/move",
    "/api/v1/file/name",
    "/api/v1/file/rename",
    "/api/v1/file/trash",
    "/api/v1/file/recover",
    "/api/v1/file/recover/by_path",
    "/api/v1/file/delete",
    "/api/v1/file/download_info",
    "/api/v1/user/info",
)


def test_cloud_disk_endpoints_round_trip(server: Server, pan: Client) -> None:
    sdkkit.need(server, *DISK)
    docs = pan.disk_mkdir("docs")
    archive = pan.disk_mkdir("archive", parent_id=docs)
    assert isinstance(docs, int) and docs > 0 and archive > 0

    data = b"report " * 200_000  # 1.4 MB: two slices
    created = pan.disk_create(docs, "report.txt", md5(data), len(data))
    assert created.reuse is False and created.slice_size == MiB
    for number in (1, 2):
        url = pan.disk_get_upload_url(created.preupload_id, number).presigned_url
        assert httpx.put(url, content=data[(number - 1) * MiB : number * MiB]).status_code == 200
    assert [p.part_number for p in pan.disk_list_upload_parts(created.preupload_id)] == [1, 2]
    done = pan.disk_upload_complete(created.preupload_id)
    file_id = done.file_id
    while (
        not done.completed
        and not (res := pan.disk_upload_async_result(created.preupload_id)).completed
    ):
        time.sleep(0.3)
    if not done.completed:
        file_id = res.file_id
    assert isinstance(file_id, int) and file_id > 0

    detail = pan.disk_detail(file_id)
    assert (detail.filename, detail.size, detail.etag, detail.parent_file_id) == (
        "report.txt",
        len(data),
        md5(data),
        docs,
    )
    page = pan.disk_list(docs)
    assert page.is_last and {f.filename for f in page.files} == {"archive", "report.txt"}
    old = pan.disk_list_v1(docs, page=1, limit=10)
    assert {f.filename for f in old.files} == {"archive", "report.txt"}
    infos = pan.disk_infos([file_id, archive])
    assert {f.file_id for f in infos} == {file_id, archive}

    pan.disk_rename(file_id, "renamed.txt")
    assert pan.disk_detail(file_id).filename == "renamed.txt"
    renamed = pan.disk_rename_batch({file_id: "final.txt"})
    assert all(f.file_id != file_id for f in renamed.fail_list)
    assert pan.disk_detail(file_id).filename == "final.txt"

    pan.disk_move([file_id], archive)
    assert pan.disk_detail(file_id).parent_file_id == archive

    link = pan.download_info(file_id).download_url
    assert httpx.get(link, follow_redirects=True).content == data

    pan.disk_trash([file_id])
    assert pan.disk_detail(file_id).trashed is True
    assert pan.disk_recover([file_id]) == []
    assert pan.disk_detail(file_id).trashed is False
    pan.disk_trash([file_id])
    pan.disk_recover_by_path([file_id], docs)
    assert pan.disk_detail(file_id).parent_file_id == docs
    pan.disk_trash([file_id])
    pan.disk_delete([file_id])
    with pytest.raises(NotFoundError):
        pan.disk_detail(file_id)
    with pytest.raises(NotFoundError):
        pan.download_info(file_id)

    me = pan.user_info()
    assert me.uid > 0 and me.space_permanent >= me.space_used >= 0


def test_cloud_disk_upload_v2_endpoints(server: Server, pan: Client) -> None:
    sdkkit.need(
        server,
        "/upload/v2/file/create",
        "/upload/v2/file/slice",
        "/upload/v2/file/upload_complete",
        "/upload/v2/file/domain",
        "/upload/v2/file/single/create",
    )
    data = jpeg_bytes(MiB + 4096)
    created = pan.disk_create_v2(0, "v2.bin", md5(data), len(data))
    assert created.servers and not created.reuse
    server_url = created.servers[0]
    for number in (1, 2):
        chunk = data[(number - 1) * MiB : number * MiB]
        pan.disk_upload_slice_v2(server_url, created.preupload_id, number, md5(chunk), chunk)
    deadline = time.monotonic() + 60
    while True:
        try:
            result = pan.disk_upload_complete_v2(created.preupload_id)
        except StillVerifyingError:
            result = None
        if result is not None and result.completed:
            break
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert pan.disk_detail(result.file_id).etag == md5(data)

    domains = pan.disk_upload_domain_v2()
    assert domains and all(d.startswith("http") for d in domains)
    small = b"one step upload"
    single = pan.disk_upload_single_v2(domains[0], 0, "single.txt", md5(small), small)
    assert single.completed and pan.disk_detail(single.file_id).size == len(small)


# Offline downloads and copy tasks -------------------------------------------------------------


def _wait_offline(pan: Client, task_id: int, oss: bool) -> OfflineStatus:
    deadline = time.monotonic() + 60
    while True:
        progress = pan.oss_offline_process(task_id) if oss else pan.offline_process(task_id)
        assert 0 <= progress.process <= 100
        if progress.finished:
            return progress.status
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_offline_download_endpoints_both_spaces(server: Server, pan: Client) -> None:
    sdkkit.need(
        server,
        "/api/v1/offline/download",
        "/api/v1/offline/download/process",
        "/api/v1/oss/offline/download",
        "/api/v1/oss/offline/download/process",
    )
    image = jpeg_bytes(200_000)
    with sdkkit.origin({"/cat.jpg": image}) as url:
        disk_task = pan.offline_download(url + "/cat.jpg", file_name="disk-cat.jpg")
        oss_task = pan.oss_offline_download(url + "/cat.jpg", file_name="oss-cat.jpg")
        assert isinstance(disk_task, int) and isinstance(oss_task, int)
        assert _wait_offline(pan, disk_task, oss=False) == OfflineStatus.SUCCEEDED
        assert _wait_offline(pan, oss_task, oss=True) == OfflineStatus.SUCCEEDED
    with pytest.raises(NotFoundError):
        pan.offline_process(disk_task + 10_000_000)


def test_copy_task_endpoints(server: Server, pan: Client, tmp_path: Path) -> None:
    sdkkit.need(
        server,
        "/api/v1/oss/source/copy",
        "/api/v1/oss/source/copy/process",
        "/api/v1/oss/source/copy/fail",
    )
    picture = tmp_path / "pic.jpg"
    picture.write_bytes(jpeg_bytes(100_000))
    uploaded = pan.upload(picture, "/pics", space="disk", link=False)
    [gallery] = pan.oss_mkdir("gallery")
    task_id = pan.oss_copy([int(uploaded.file.file_id)], gallery.dir_id)
    assert isinstance(task_id, str) and task_id
    deadline = time.monotonic() + 60
    while not (progress := pan.oss_copy_process(task_id)).finished:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert progress.status == CopyStatus.DONE, progress.fail_msg
    failures = pan.oss_copy_fail(task_id, page=1, limit=100)
    assert failures.total == 0 and failures.files == []
    assert [f.filename for f in pan.oss_list(gallery.dir_id).files] == ["pic.jpg"]


def test_access_token_endpoint(pan: Client) -> None:
    token = pan.access_token()
    assert token.access_token.count(".") == 2  # a JWT
    assert token.expired_at.utcoffset() is not None
    assert pan.token() == token.access_token
