"""The SDK's helpers against a real server: upload (slices, retries, resume, both spaces),
upload_dir, download with resume, iter_files, and the same through AsyncClient."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sdkkit
from conftest import MiB, Server, jpeg_bytes

from openpan.client import (
    APIError,
    Client,
    ClientError,
    DownloadError,
    OfflineStatus,
    OssFile,
    TaskFailed,
    UploadError,
)

DISK_UPLOAD = (
    "/upload/v1/file/mkdir",
    "/upload/v1/file/create",
    "/api/v2/file/list",
    "/api/v1/file/detail",
    "/api/v1/file/download_info",
)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def pan(server: Server, tmp_path: Path) -> Iterator[Client]:
    with sdkkit.client(server, tmp_path) as client:
        yield client


def test_upload_sends_slices_in_parallel_and_returns_the_file_with_its_link(
    server: Server, tmp_path: Path
) -> None:
    data = jpeg_bytes(5 * MiB + 123)  # six slices
    source = write(tmp_path / "big.jpg", data)
    watch = sdkkit.Watch()
    seen: list[int] = []
    with sdkkit.client(server, tmp_path, transport=watch) as pan:
        uploaded = pan.upload(source, "/photos/2024", concurrency=2, progress=seen.append)
        assert isinstance(uploaded.file, OssFile)
        assert (uploaded.file.filename, uploaded.file.size) == ("big.jpg", len(data))
        assert uploaded.file.etag == md5(data) and not uploaded.instant
        assert uploaded.sent_bytes == len(data) and sum(seen) == len(data)
        assert httpx.get(uploaded.link).content == data
        assert [f.filename for f in pan.iter_files("/photos")] == ["2024"]
    assert watch.count("PUT") == 6
    assert 1 <= watch.peak_puts <= 2  # never more slices in flight than asked for

    with sdkkit.client(server, tmp_path, transport=watch) as other_user:
        again = other_user.upload(source)  # the server has these bytes: nothing is sent
    assert again.instant and again.sent_bytes == 0 and watch.count("PUT") == 6
    assert httpx.get(again.link).content == data


@pytest.mark.parametrize("failure", ["status", "dropped"])
def test_a_failed_slice_put_is_sent_again(server: Server, tmp_path: Path, failure: str) -> None:
    data = jpeg_bytes(3 * MiB + 7)
    source = write(tmp_path / "flaky.jpg", data)
    broken: list[int] = []

    def break_first_put_of_slice_2(request: httpx.Request) -> httpx.Response | None:
        if sdkkit.slice_number(request) == 2 and not broken:
            broken.append(2)
            if failure == "dropped":
                raise httpx.ReadError("connection reset", request=request)
            return httpx.Response(503, text="try again")
        return None

    watch = sdkkit.Watch(break_first_put_of_slice_2)
    with sdkkit.client(server, tmp_path, transport=watch) as pan:
        uploaded = pan.upload(source)
    puts = [sdkkit.slice_number(httpx.Request(m, "http://x" + p)) for m, p in watch.seen]
    assert sorted(n for n in puts if n) == [1, 2, 2, 3, 4]
    assert httpx.get(uploaded.link).content == data


def test_an_interrupted_upload_resumes_with_the_slices_that_arrived(
    server: Server, tmp_path: Path
) -> None:
    data = jpeg_bytes(4 * MiB + 10)  # five slices
    source = write(tmp_path / "resume.jpg", data)
    user = sdkkit.creds(server)

    def cut_after_slice_2(request: httpx.Request) -> httpx.Response | None:
        number = sdkkit.slice_number(request)
        if number is not None and number > 2:
            raise httpx.ConnectError("network gone", request=request)
        return None

    broken = sdkkit.Watch(cut_after_slice_2)
    pan = sdkkit.client(server, tmp_path, user, transport=broken, retries=0)
    with pan, pytest.raises(UploadError, match="slice 3"):
        pan.upload(source, concurrency=1)
    states = list((tmp_path / "upload-state").glob("*.json"))
    assert len(states) == 1

    watch = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, user, transport=watch) as pan:
        resumed = pan.upload(source, concurrency=1)
    assert resumed.resumed and not resumed.instant
    assert resumed.sent_bytes == len(data) - 2 * MiB
    sent = sorted(n for m, p in watch.seen if (n := _slice_of(m, p)) is not None)
    assert sent == [3, 4, 5]
    assert watch.count("POST", "/upload/v1/oss/file/create") == 0  # the old session went on
    assert httpx.get(resumed.link).content == data
    assert list((tmp_path / "upload-state").glob("*.json")) == []


def _slice_of(method: str, path: str) -> int | None:
    return sdkkit.slice_number(httpx.Request(method, "http://x" + path))


def test_a_changed_file_does_not_resume_the_old_session(server: Server, tmp_path: Path) -> None:
    user = sdkkit.creds(server)
    source = write(tmp_path / "changing.jpg", jpeg_bytes(2 * MiB + 1))

    def refuse_slice_2(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(500) if sdkkit.slice_number(request) == 2 else None

    with (
        sdkkit.client(
            server, tmp_path, user, transport=sdkkit.Watch(refuse_slice_2), retries=0
        ) as pan,
        pytest.raises(UploadError),
    ):
        pan.upload(source, concurrency=1)
    data = jpeg_bytes(2 * MiB + 1)
    source.write_bytes(data)
    with sdkkit.client(server, tmp_path, user) as pan:
        uploaded = pan.upload(source)
    assert not uploaded.resumed and uploaded.file.etag == md5(data)


def test_upload_of_a_stream_hashes_it_while_reading(pan: Client) -> None:
    data = jpeg_bytes(MiB + 99)
    first = pan.upload(io.BytesIO(data), name="stream.jpg")
    assert first.file.filename == "stream.jpg" and first.file.etag == md5(data)
    again = pan.upload(io.BytesIO(data), name="stream-again.jpg")
    assert again.instant and httpx.get(again.link).content == data
    with pytest.raises(ClientError, match="name"):
        pan.upload(io.BytesIO(b"x"))


def test_a_name_already_taken(pan: Client, tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "same.jpg", jpeg_bytes(1000))
    pan.upload(first, "/clash")
    changed = write(tmp_path / "b" / "same.jpg", jpeg_bytes(2000))
    with pytest.raises(APIError):  # left to the server: the image bed refuses a clash
        pan.upload(changed, "/clash")
    kept = pan.upload(first, "/clash", if_exists="skip")
    assert kept.existed and kept.instant and kept.sent_bytes == 0
    with pytest.raises(ClientError, match="other content"):
        pan.upload(changed, "/clash", if_exists="skip")
    replaced = pan.upload(changed, "/clash", if_exists="overwrite")
    assert replaced.file.etag == md5(changed.read_bytes())
    assert [f.filename for f in pan.iter_files("/clash")] == ["same.jpg"]


def _tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.jpg": jpeg_bytes(300_000),
        "sub/b.png": jpeg_bytes(2 * MiB + 5),
        "sub/deeper/c.gif": jpeg_bytes(10_000),
        "sub/deeper/d.jpg": jpeg_bytes(MiB),
    }
    for rel, data in files.items():
        write(root / rel, data)
    (root / "empty").mkdir()
    return files


def test_upload_dir_twice_second_run_all_instant(server: Server, tmp_path: Path) -> None:
    files = _tree(tmp_path / "album")
    watch = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, transport=watch) as pan:
        first = pan.upload_dir(tmp_path / "album", "/backup/album", concurrency=3)
        assert first.ok and len(first.files) == len(files)
        assert not any(f.instant for f in first.files)
        assert watch.peak_puts <= 3
        remote = {f.filename for f in pan.iter_files("/backup/album")}
        assert remote == {"a.jpg", "sub", "empty"}
        deeper = {f.filename: f for f in pan.iter_files("/backup/album/sub/deeper")}
        assert {n: f.etag for n, f in deeper.items()} == {
            "c.gif": md5(files["sub/deeper/c.gif"]),
            "d.jpg": md5(files["sub/deeper/d.jpg"]),
        }

        puts, creates = watch.count("PUT"), watch.count("POST", "/upload/v1/oss/file/create")
        again = pan.upload_dir(tmp_path / "album", "/backup/album", concurrency=3)
        assert again.ok and len(again.files) == len(files)
        assert all(f.instant and f.existed and f.sent_bytes == 0 for f in again.files)
        assert watch.count("PUT") == puts
        assert watch.count("POST", "/upload/v1/oss/file/create") == creates

        elsewhere = pan.upload_dir(tmp_path / "album", "/copy")
        assert all(f.instant and not f.existed for f in elsewhere.files)
        assert watch.count("PUT") == puts
        link = next(f.link for f in elsewhere.files if f.source.endswith("b.png"))
        assert link and httpx.get(link).content == files["sub/b.png"]


def test_upload_dir_reports_a_failing_file_and_goes_on(pan: Client, tmp_path: Path) -> None:
    write(tmp_path / "mixed" / "ok.jpg", jpeg_bytes(1000))
    write(tmp_path / "mixed" / "notes.txt", b"not an image")  # the image bed refuses it
    seen: list[str] = []
    result = pan.upload_dir(tmp_path / "mixed", "/mixed", on_file=lambda r: seen.append(r.source))
    assert [Path(f.source).name for f in result.files] == ["ok.jpg"]
    assert [Path(f.source).name for f in result.failures] == ["notes.txt"]
    assert isinstance(result.failures[0].error, APIError) and not result.ok
    assert sorted(Path(s).name for s in seen) == ["notes.txt", "ok.jpg"]


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_upload_to_the_cloud_disk(
    server: Server, pan: Client, tmp_path: Path, protocol: str
) -> None:
    sdkkit.need(server, *DISK_UPLOAD)
    if protocol == "v2":
        sdkkit.need(server, "/upload/v2/file/create", "/upload/v2/file/slice")
    data = jpeg_bytes(2 * MiB + 3)
    source = write(tmp_path / f"disk-{protocol}.bin", data)
    uploaded = pan.upload(source, "/docs", space="disk", protocol=protocol)  # type: ignore[arg-type]
    assert isinstance(uploaded.file.file_id, int) and uploaded.file.etag == md5(data)
    assert uploaded.link and httpx.get(uploaded.link, follow_redirects=True).content == data
    tree = pan.upload_dir(source.parent, "/docs-tree", space="disk")
    assert tree.ok and all(f.instant for f in tree.files)


def test_download_resumes_and_checks_the_md5(pan: Client, tmp_path: Path) -> None:
    data = jpeg_bytes(3 * MiB + 17)
    uploaded = pan.upload(write(tmp_path / "src" / "dl.jpg", data), "/dl")
    out = tmp_path / "out"
    out.mkdir()
    (out / "dl.jpg.part").write_bytes(data[:MiB])  # an earlier download, cut off
    seen: list[int] = []
    got = pan.download("/dl/dl.jpg", out, progress=seen.append)
    assert got.path == out / "dl.jpg" and got.resumed and got.received == len(data) - MiB
    assert got.path.read_bytes() == data and sum(seen) == len(data)
    assert not (out / "dl.jpg.part").exists()

    (out / "bad.jpg.part").write_bytes(b"\0" * MiB)  # wrong bytes: the md5 will not match
    with pytest.raises(DownloadError, match="md5"):
        pan.download(uploaded.file.file_id, out / "bad.jpg")
    assert not (out / "bad.jpg.part").exists()
    fresh = pan.download(uploaded.file.file_id, out / "bad.jpg")
    assert fresh.path.read_bytes() == data and not fresh.resumed


def test_download_from_the_cloud_disk(server: Server, pan: Client, tmp_path: Path) -> None:
    sdkkit.need(server, *DISK_UPLOAD)
    data = b"disk bytes " * 100_000
    uploaded = pan.upload(write(tmp_path / "d.txt", data), "/", space="disk", link=False)
    assert uploaded.link is None
    got = pan.download(uploaded.file.file_id, tmp_path / "back.txt", space="disk")
    assert got.path.read_bytes() == data


def test_iter_files_pages_through_last_file_id(server: Server, tmp_path: Path) -> None:
    watch = sdkkit.Watch()
    with sdkkit.client(server, tmp_path, transport=watch) as pan:
        [parent] = pan.oss_mkdir("many")
        names = [f"d{i:03}" for i in range(230)]
        for start in range(0, len(names), 100):
            pan.oss_mkdir(names[start : start + 100], parent.dir_id)
        listed = [f.filename for f in pan.iter_files(parent.dir_id)]
    assert sorted(listed) == names and len(set(listed)) == 230
    assert watch.count("POST", "/api/v1/oss/file/list") == 3


def test_offline_task_handle_waits_and_reports_progress(server: Server, pan: Client) -> None:
    sdkkit.need(server, "/api/v1/oss/offline/download", "/api/v1/oss/offline/download/process")
    image = jpeg_bytes(300_000)
    seen = []
    with sdkkit.origin({"/img.jpg": image}) as url:
        task = pan.offline(url + "/img.jpg", dest="/fetched", name="fetched.jpg")
        done = task.wait(timeout=60, interval=0.2, on_progress=seen.append)
        assert done.status == OfflineStatus.SUCCEEDED and seen[-1] == done
        [entry] = pan.iter_files("/fetched")
        assert entry.filename == "fetched.jpg" and entry.etag == md5(image)
        missing = pan.offline(url + "/gone.jpg", dest="/fetched")
        with pytest.raises(TaskFailed) as caught:
            missing.wait(timeout=60, interval=0.2)
    assert caught.value.task_id == missing.task_id


def test_copy_task_handle(server: Server, pan: Client, tmp_path: Path) -> None:
    sdkkit.need(server, "/api/v1/oss/source/copy", *DISK_UPLOAD)
    images = tmp_path / "pics"
    write(images / "one.jpg", jpeg_bytes(5000))
    write(images / "two.png", jpeg_bytes(6000))
    write(images / "readme.txt", b"skipped: not an image")
    pan.upload_dir(images, "/pics", space="disk")
    task = pan.copy(["/pics"], "/gallery")
    assert task.wait(timeout=60, interval=0.2).fail_msg == ""
    assert task.failures() == []
    assert {f.filename for f in pan.iter_files("/gallery")} == {"one.jpg", "two.png"}


# AsyncClient ----------------------------------------------------------------------------------


def test_async_client_uploads_downloads_and_waits(server: Server, tmp_path: Path) -> None:
    data = jpeg_bytes(3 * MiB + 3)
    source = write(tmp_path / "async.jpg", data)
    files = _tree(tmp_path / "tree")
    first_put: list[int] = []

    def fail_slice_2_once(request: httpx.Request) -> httpx.Response | None:
        if sdkkit.slice_number(request) == 2 and not first_put:
            first_put.append(2)
            return httpx.Response(500)
        return None

    watch = sdkkit.AsyncWatch(fail_slice_2_once)

    async def main() -> None:
        async with sdkkit.async_client(server, tmp_path, transport=watch) as pan:
            uploaded = await pan.upload(source, "/async", concurrency=3)
            assert uploaded.file.etag == md5(data) and uploaded.link
            assert watch.count("PUT") == 5  # four slices, the second one twice
            got = await pan.download(uploaded.file.file_id, tmp_path / "back.jpg")
            assert got.path.read_bytes() == data
            names = [f.filename async for f in pan.iter_files("/async")]
            assert names == ["async.jpg"]
            tree = await pan.upload_dir(tmp_path / "tree", "/async-tree")
            assert tree.ok and len(tree.files) == len(files)
            again = await pan.upload_dir(tmp_path / "tree", "/async-tree")
            assert all(f.existed for f in again.files)
            gone = await pan.resolve("/async/async.jpg")
            assert gone is not None and gone.file_id == uploaded.file.file_id
            if sdkkit.missing_endpoints(server, "/api/v1/oss/offline/download"):
                return
            with sdkkit.origin({"/a.jpg": jpeg_bytes(1000)}) as url:
                task = await pan.offline(url + "/a.jpg", dest="/async")
                progress = await task.wait(timeout=60, interval=0.2)
                assert progress.status == OfflineStatus.SUCCEEDED

    asyncio.run(main())
