"""The local store's slices, without a server: markers, the md5 of a slice computed only when
``list_parts`` asks for it, and data written to disk while later slices arrive."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from openpan.storage import background_flush, local
from openpan.storage.local import LocalStore
from openpan.storage.slice_markers import read_markers

PART = 64 * 1024


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def body(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 10_000):
        yield data[start : start + 10_000]


def run(test: Callable[[LocalStore], Coroutine[Any, Any, None]], root: Path) -> None:
    asyncio.run(test(LocalStore(root)))


def parts_dir(store: LocalStore, upload_id: str) -> Path:
    return store.uploads / upload_id / "parts"


def test_a_slice_is_hashed_only_when_listed_and_only_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * PART + 123)
    hashed: list[tuple[int, int]] = []
    real_hash_range = local.hash_range

    def counting(path: Path, hasher: hashlib._Hash, offset: int, length: int) -> None:
        hashed.append((offset, length))
        real_hash_range(path, hasher, offset, length)

    monkeypatch.setattr(local, "hash_range", counting)

    async def test(store: LocalStore) -> None:
        await store.start_upload("up1", len(data), PART)
        for number in (3, 1):
            offset = (number - 1) * PART
            chunk = data[offset : offset + PART]
            await store.write_part("up1", number, offset, len(chunk), body(chunk))
        assert await store.part_numbers("up1") == {1, 3}
        # Stored and counted, yet no slice's own md5 was computed.
        assert hashed == []
        listed = await store.list_parts("up1", PART)
        assert [(p.number, p.size, p.md5) for p in listed] == [
            (1, PART, md5(data[:PART])),
            (3, 123, md5(data[2 * PART :])),
        ]
        assert sorted(hashed) == [(0, PART), (2 * PART, 123)]
        # Kept in the markers: the next listing reads nothing back.
        assert await store.list_parts("up1", PART) == listed
        assert len(hashed) == 2

    run(test, tmp_path)


def test_a_slice_whose_md5_the_caller_checked_is_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(PART)

    def refuse(*args: object) -> None:
        raise AssertionError("hashed again")

    monkeypatch.setattr(local, "hash_range", refuse)

    async def test(store: LocalStore) -> None:
        await store.start_upload("up2", len(data), PART)
        await store.write_part("up2", 1, 0, len(data), body(data), md5(data))
        marker = parts_dir(store, "up2") / read_markers(parts_dir(store, "up2"))[1]
        assert marker.read_text() == md5(data)
        listed = await store.list_parts("up2", PART)
        assert [(p.number, p.md5) for p in listed] == [(1, md5(data))]

    run(test, tmp_path)


def test_markers_made_before_lazy_hashing_are_still_read(tmp_path: Path) -> None:
    async def test(store: LocalStore) -> None:
        await store.start_upload("up3", 2 * PART, PART)
        old = parts_dir(store, "up3") / f"2-{PART}-{'ab' * 16}"
        old.touch()
        assert await store.part_numbers("up3") == {2}
        listed = await store.list_parts("up3", PART)
        assert [(p.number, p.size, p.md5) for p in listed] == [(2, PART, "ab" * 16)]

    run(test, tmp_path)


def test_a_slice_sent_again_gets_a_new_marker_even_with_the_same_bytes(tmp_path: Path) -> None:
    data = os.urandom(PART)

    async def test(store: LocalStore) -> None:
        await store.start_upload("up4", len(data), PART)
        await store.write_part("up4", 1, 0, len(data), body(data), md5(data))
        first = read_markers(parts_dir(store, "up4"))[1]
        await store.write_part("up4", 1, 0, len(data), body(data), md5(data))
        second = read_markers(parts_dir(store, "up4"))[1]
        # The running md5 compares marker names to notice slices that may have changed.
        assert first != second
        assert (await store.assemble("up4", 1)).md5 == md5(data)

    run(test, tmp_path)


def test_a_slice_replaced_while_it_is_hashed_is_listed_with_its_new_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = os.urandom(PART), os.urandom(PART)
    real_hash_range = local.hash_range
    replaced: list[bool] = []

    async def test(store: LocalStore) -> None:
        await store.start_upload("up5", PART, PART)
        await store.write_part("up5", 1, 0, PART, body(old))
        parts = parts_dir(store, "up5")

        def resent_meanwhile(path: Path, hasher: hashlib._Hash, offset: int, length: int) -> None:
            real_hash_range(path, hasher, offset, length)
            if not replaced:
                # What a PUT of the same slice does: marker gone, new bytes, new marker.
                replaced.append(True)
                (parts / read_markers(parts)[1]).unlink()
                with open(path, "r+b") as handle:
                    handle.write(new)
                (parts / f"1-{PART}-w0123456789abcdef").touch()

        monkeypatch.setattr(local, "hash_range", resent_meanwhile)
        listed = await store.list_parts("up5", PART)
        assert [(p.number, p.md5) for p in listed] == [(1, md5(new))]

    run(test, tmp_path)


def test_data_is_synced_while_slices_arrive_and_a_failed_sync_is_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(4 * PART)
    synced: list[Path] = []

    def datasync(path: Path) -> None:
        synced.append(path)
        if len(synced) == 1:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(background_flush, "FLUSH_EVERY", 2 * PART)
    monkeypatch.setattr(background_flush, "FLUSH_NOW_MIN", PART)
    monkeypatch.setattr(background_flush, "_datasync", datasync)

    async def test(store: LocalStore) -> None:
        await store.start_upload("up6", len(data), PART)
        for number in (1, 2, 3, 4):
            offset = (number - 1) * PART
            await store.write_part("up6", number, offset, PART, body(data[offset : offset + PART]))
            await asyncio.sleep(0.05)  # let a background sync run
        assert len(synced) == 2  # after slices 2 and 4; the first one failed
        whole = await store.assemble("up6", 4)
        assert whole.md5 == md5(data)
        await store.commit_upload("up6", "ab/blob")
        assert (store.blobs / "ab" / "blob").read_bytes() == data

    run(test, tmp_path)
