"""Every backend keeps the storage protocol's promises (``storage/base.py``): the memory store,
the local directory and the object store (moto's S3 server stands in for MinIO/AWS) answer
each call alike, errors included. What only one backend does is tested beside it
(``test_storage_local_parts.py``, ``test_s3_store.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskkit
import pytest
import scaleout
from conftest import make_server
from scaleout import CREDENTIALS, S3Server

from openpan.storage import BlobStore, PartSizeError, StorageError, open_store
from openpan.storage.local import LocalStore
from openpan.storage.memory import MemoryStore
from openpan.storage.s3 import S3Store

s3_server = scaleout.s3_server  # the fixture, shared with the other scale-out tests

KEY = "ab/ab12cd-7-x9"
BAD_KEYS = [
    "",
    "/etc/passwd",
    "../x",
    "ab/../../x",
    "ab//x",
    "ab/./x",
    "ab/.hidden",
    "ab/x/",
    "a\x00b",
    "ab\\..\\x",
    "ab/x y",
    "a" * 256,
]


@dataclass
class Backend:
    store: BlobStore
    # The size of every part but the last (S3 refuses smaller ones when joining them).
    part_size: int
    presigns: bool


@pytest.fixture(params=["memory", "local", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    if request.param == "memory":
        yield Backend(MemoryStore(temp_dir=tmp_path / "tmp"), 64 * 1024, presigns=False)
    elif request.param == "local":
        yield Backend(LocalStore(tmp_path / "blobs"), 64 * 1024, presigns=False)
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        store = S3Store(
            server.new_bucket(), "contract", endpoint=server.endpoint, temp_dir=tmp_path / "tmp"
        )
        yield Backend(store, store.min_part_size, presigns=True)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def body(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100_000):
        yield data[start : start + 100_000]


async def read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def put(store: BlobStore, key: str, data: bytes) -> Path:
    path = store.temp_path()
    path.write_bytes(data)
    await store.put_file(key, path)
    return path


# Blobs -------------------------------------------------------------------------------------


def test_a_stored_file_becomes_a_blob_and_the_file_is_consumed(backend: Backend) -> None:
    store = backend.store
    data = os.urandom(300_000)

    async def test() -> None:
        assert not await store.exists(KEY)
        path = await put(store, KEY, data)
        assert not path.exists()
        assert await store.exists(KEY)
        assert await read(store, KEY) == data
        local = store.local_path(KEY)
        assert local is None or local.read_bytes() == data

    run(test)


def test_ranges_are_end_exclusive_clipped_to_the_blob_and_empty_when_end_is_not_after_start(
    backend: Backend,
) -> None:
    store = backend.store
    data = os.urandom(300_000)

    async def test() -> None:
        await put(store, KEY, data)
        assert await read(store, KEY, 0, 1) == data[:1]
        assert await read(store, KEY, 1000, 270_001) == data[1000:270_001]
        assert await read(store, KEY, 299_990) == data[299_990:]
        assert await read(store, KEY, 299_990, 400_000) == data[299_990:]
        assert await read(store, KEY, 5, 5) == b""
        assert await read(store, KEY, 9, 5) == b""

    run(test)


def test_an_empty_blob_is_stored_and_read(backend: Backend) -> None:
    async def test() -> None:
        await put(backend.store, KEY, b"")
        assert await backend.store.exists(KEY)
        assert await read(backend.store, KEY) == b""

    run(test)


def test_reading_a_missing_blob_raises_file_not_found(backend: Backend) -> None:
    async def test() -> None:
        with pytest.raises(FileNotFoundError):
            await read(backend.store, KEY)
        with pytest.raises(FileNotFoundError):
            await read(backend.store, KEY, 10, 20)

    run(test)


def test_deleting_removes_a_blob_and_a_missing_one_is_no_error(backend: Backend) -> None:
    store = backend.store

    async def test() -> None:
        await put(store, KEY, b"bytes")
        await store.delete(KEY)
        assert not await store.exists(KEY)
        await store.delete(KEY)

    run(test)


@pytest.mark.parametrize("key", BAD_KEYS)
def test_a_blob_key_that_could_leave_the_blobs_is_refused_before_anything_is_done(
    backend: Backend, key: str
) -> None:
    store = backend.store
    source = store.temp_path()
    source.write_bytes(b"x")

    async def test() -> None:
        for call in (
            lambda: store.put_file(key, source),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: read(store, key),
        ):
            with pytest.raises(StorageError, match="bad blob key"):
                await call()

    run(test)
    assert source.exists()


def test_the_keys_blobs_are_stored_under_are_accepted(backend: Backend) -> None:
    key = f"{md5(b'x')[:2]}/{md5(b'x')}-1-off12-0a1b2c3d"

    async def test() -> None:
        await put(backend.store, key, b"x")
        assert await backend.store.exists(key)
        assert await read(backend.store, key) == b"x"

    run(test)


def test_a_presigned_get_is_a_url_or_none_when_the_store_serves_through_openpan(
    backend: Backend,
) -> None:
    async def test() -> None:
        await put(backend.store, KEY, b"x")
        url = backend.store.presign_get(
            KEY, 60, media_type="image/png", download_name="a b.png", cache_control="no-store"
        )
        part_url = None
        await backend.store.start_upload("up1", 1, backend.part_size)
        part_url = await backend.store.presign_part("up1", 1, 60)
        if backend.presigns:
            assert url is not None and url.startswith("http")
            assert part_url is not None and part_url.startswith("http")
        else:
            assert url is None and part_url is None

    run(test)


# Multipart uploads -------------------------------------------------------------------------


def test_parts_sent_out_of_order_are_listed_assembled_and_committed_as_one_blob(
    backend: Backend,
) -> None:
    store, part = backend.store, backend.part_size
    data = os.urandom(2 * part + 1234)
    pieces = [data[:part], data[part : 2 * part], data[2 * part :]]

    async def test() -> None:
        await store.start_upload("up-1_a", len(data), part)
        assert "up-1_a" in await store.list_uploads()
        for number in (3, 1, 2):
            piece = pieces[number - 1]
            await store.write_part("up-1_a", number, (number - 1) * part, len(piece), body(piece))
        assert await store.part_numbers("up-1_a") == {1, 2, 3}
        listed = await store.list_parts("up-1_a", part)
        assert [(p.number, p.size, p.md5) for p in listed] == [
            (n, len(piece), md5(piece)) for n, piece in enumerate(pieces, 1)
        ]
        whole = await store.assemble("up-1_a", 3)
        assert (whole.md5, whole.size) == (md5(data), len(data))
        await store.commit_upload("up-1_a", KEY)
        assert await read(store, KEY) == data
        assert "up-1_a" not in await store.list_uploads()

    run(test)


def test_a_part_whose_md5_the_caller_checked_is_listed_with_it(backend: Backend) -> None:
    store = backend.store

    async def test() -> None:
        await store.start_upload("up1", 5, backend.part_size)
        await store.write_part("up1", 1, 0, 5, body(b"hello"), md5(b"hello"))
        assert [(p.number, p.md5) for p in await store.list_parts("up1", 5)] == [(1, md5(b"hello"))]

    run(test)


def test_a_part_sent_again_replaces_the_first(backend: Backend) -> None:
    store = backend.store

    async def test() -> None:
        await store.start_upload("up1", 5, backend.part_size)
        await store.write_part("up1", 1, 0, 5, body(b"first"))
        await store.write_part("up1", 1, 0, 5, body(b"again"))
        assert [p.md5 for p in await store.list_parts("up1", backend.part_size)] == [md5(b"again")]
        assert (await store.assemble("up1", 1)).md5 == md5(b"again")

    run(test)


@pytest.mark.parametrize("sent", [b"toolong", b"shrt"], ids=["longer", "shorter"])
def test_a_part_of_the_wrong_size_raises_part_size_error_and_leaves_no_trace(
    backend: Backend, sent: bytes
) -> None:
    store = backend.store

    async def test() -> None:
        await store.start_upload("up1", 6, backend.part_size)
        with pytest.raises(PartSizeError):
            await store.write_part("up1", 1, 0, 6, body(sent))
        assert await store.part_numbers("up1") == set()
        assert await store.list_parts("up1", backend.part_size) == []

    run(test)


def test_a_part_of_an_upload_never_started_is_refused(backend: Backend) -> None:
    async def test() -> None:
        with pytest.raises(StorageError, match="not started"):
            await backend.store.write_part("nosuch", 1, 0, 1, body(b"x"))
        assert await backend.store.part_numbers("nosuch") == set()
        assert await backend.store.list_parts("nosuch", backend.part_size) == []

    run(test)


def test_assembling_with_a_part_missing_raises_storage_error(backend: Backend) -> None:
    store = backend.store

    async def test() -> None:
        await store.start_upload("up1", 2 * backend.part_size, backend.part_size)
        await store.write_part("up1", 2, backend.part_size, 3, body(b"end"))
        with pytest.raises(StorageError, match="missing"):
            await store.assemble("up1", 2)

    run(test)


def test_an_aborted_upload_is_forgotten_and_a_missing_one_is_no_error(backend: Backend) -> None:
    store = backend.store

    async def test() -> None:
        await store.start_upload("up1", 5, backend.part_size)
        await store.write_part("up1", 1, 0, 5, body(b"hello"))
        await store.abort_upload("up1")
        assert "up1" not in await store.list_uploads()
        assert await store.part_numbers("up1") == set()
        await store.abort_upload("up1")
        await store.abort_upload("never")

    run(test)


@pytest.mark.parametrize("upload_id", ["", "../x", "a/b", "a b", "a.b"])
def test_an_upload_id_that_is_not_a_url_safe_token_is_refused(
    backend: Backend, upload_id: str
) -> None:
    async def test() -> None:
        with pytest.raises(StorageError, match="bad upload id"):
            await backend.store.start_upload(upload_id, 1, backend.part_size)
        with pytest.raises(StorageError, match="bad upload id"):
            await backend.store.write_part(upload_id, 1, 0, 1, body(b"x"))

    run(test)


# Temporary files and readiness -------------------------------------------------------------


def test_temp_paths_are_fresh_and_only_old_temp_files_are_cleaned_up(backend: Backend) -> None:
    store = backend.store
    old, new = store.temp_path(), store.temp_path()
    assert old != new and old.parent == new.parent
    assert not old.exists()
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    run(lambda: store.cleanup_temp(older_than=60))
    assert not old.exists() and new.exists()


def test_a_usable_store_passes_its_readiness_check(backend: Backend) -> None:
    run(backend.store.check)


# The memory store's own promises -----------------------------------------------------------


def test_memory_urls_open_a_memory_store_bounded_by_max_bytes(tmp_path: Path) -> None:
    store = open_store("memory://?max_bytes=10", temp_dir=tmp_path)
    assert isinstance(store, MemoryStore) and store.max_bytes == 10
    assert isinstance(open_store("memory://", temp_dir=tmp_path), MemoryStore)
    for bad in ("memory://?size=1", "memory://?max_bytes=ten", "memory://?max_bytes=0"):
        with pytest.raises(ValueError):
            open_store(bad, temp_dir=tmp_path)


def test_a_full_memory_store_refuses_more_bytes_as_a_full_disk_would(tmp_path: Path) -> None:
    store = MemoryStore(max_bytes=10, temp_dir=tmp_path)

    async def test() -> None:
        await put(store, KEY, b"12345678")
        with pytest.raises(StorageError, match="full"):
            await put(store, "ab/other", b"123")
        await put(store, KEY, b"1234567890")  # replacing a blob frees its old bytes
        await store.start_upload("up1", 5, 5)
        with pytest.raises(StorageError, match="full"):
            await store.write_part("up1", 1, 0, 5, body(b"hello"))
        await store.delete(KEY)
        await store.write_part("up1", 1, 0, 5, body(b"hello"))
        assert store.held() == 5

    run(test)


def test_a_server_started_on_memory_storage_stores_and_serves_a_file(tmp_path: Path) -> None:
    """``memory://`` is taken wherever a storage URL is (here ``OPENPAN_STORAGE_URL``)."""
    server = make_server(tmp_path, OPENPAN_STORAGE_URL="memory://")
    server.start()
    try:
        api = server.client(server.take_user())
        data = os.urandom(100_000)
        answer = diskkit.single(api, data, "in-memory.bin")
        assert answer["code"] == 0, answer
        assert diskkit.download(api, int(answer["data"]["fileID"])) == data
        api.close()
    finally:
        server.stop()
