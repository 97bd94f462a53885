"""How a download's bytes reach its partial file, in process: ``write_at`` (whole blocks past the
page cache, the rest through it) and ``PartialFile`` (several batches in flight, written and
hashed in order, nothing written after a batch that failed)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import random
from pathlib import Path
from typing import Any

import pytest

from openpan.storage import direct_write, partial
from openpan.storage.direct_write import ALIGN, BUFFER_SIZE, write_at
from openpan.storage.partial import PartialFile


def _batches(data: bytes, rng: random.Random) -> list[list[bytes]]:
    """``data`` cut into batches of chunks of uneven sizes, as the network hands them over."""
    batches: list[list[bytes]] = []
    position = 0
    while position < len(data):
        batch = []
        for _ in range(rng.randint(1, 6)):
            size = rng.choice([1, 7, ALIGN - 1, ALIGN, 65_536, 250_001, BUFFER_SIZE + 3])
            batch.append(data[position : position + size])
            position += size
        batches.append([chunk for chunk in batch if chunk])
    return [batch for batch in batches if batch]


@pytest.mark.parametrize("start", [0, 1, ALIGN - 1, ALIGN, 3 * ALIGN + 5])
def test_batches_land_where_they_belong(tmp_path: Path, start: int) -> None:
    rng = random.Random(start)
    kept = os.urandom(start)  # what a resumed download keeps of its file
    data = os.urandom(3 * BUFFER_SIZE + 12_345)
    path = tmp_path / "partial"
    path.write_bytes(kept)
    offset = start
    for batch in _batches(data, rng):
        write_at(str(path), batch, offset)
        offset += sum(len(chunk) for chunk in batch)
    assert path.read_bytes() == kept + data


def test_whole_blocks_bypass_the_page_cache_where_allowed(tmp_path: Path) -> None:
    if not getattr(os, "O_DIRECT", 0):
        pytest.skip("no O_DIRECT on this platform")
    path = tmp_path / "partial"
    path.write_bytes(b"")
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_DIRECT))
    except OSError:
        pytest.skip("this file system refuses O_DIRECT")
    opened: list[int] = []
    real_open = os.open

    def watching_open(name: Any, flags: int, *args: Any) -> int:
        opened.append(flags)
        return real_open(name, flags, *args)

    data = os.urandom(2 * BUFFER_SIZE + 100)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct_write, "_direct_ok", True)
        patch.setattr(os, "open", watching_open)
        write_at(str(path), [data[:10], data[10:]], 0)
    assert path.read_bytes() == data
    assert any(flags & os.O_DIRECT for flags in opened)


def test_a_file_system_that_refuses_o_direct_gets_page_cache_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refusing_open(name: Any, flags: int, *args: Any) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(name, flags, *args)

    monkeypatch.setattr(direct_write, "_direct_ok", True)
    monkeypatch.setattr(direct_write, "_O_DIRECT", getattr(os, "O_DIRECT", 0x4000))
    monkeypatch.setattr(os, "open", refusing_open)
    path = tmp_path / "partial"
    path.write_bytes(b"")
    data = os.urandom(BUFFER_SIZE + 5 * ALIGN + 3)
    write_at(str(path), [data[:100], data[100:]], 0)
    write_at(str(path), [data[:7]], len(data))
    assert path.read_bytes() == data + data[:7]
    assert direct_write._direct_ok is False


def _sink(path: Path) -> PartialFile:
    path.write_bytes(b"")
    return PartialFile(path=str(path), written=0, hasher=hashlib.md5())


def _through_sink(path: Path, batches: list[list[bytes]], durable_every: int) -> PartialFile:
    """A sink fed ``batches`` (every ``durable_every``-th one asking for a sync), then synced."""

    async def run() -> PartialFile:
        sink = _sink(path)
        for number, batch in enumerate(batches):
            size = sum(len(chunk) for chunk in batch)
            await sink.write(batch, size, durable=number % durable_every == 0)
        await sink.sync()
        return sink

    return asyncio.run(run())


def _assert_whole(sink: PartialFile, path: Path, data: bytes) -> None:
    assert sink.hasher.hexdigest() == hashlib.md5(data).hexdigest()
    assert path.read_bytes() == data
    assert sink.synced == sink.written == len(data)


def test_the_sink_keeps_batches_in_order_with_several_in_flight(tmp_path: Path) -> None:
    data = os.urandom(5 * BUFFER_SIZE + 777)
    batches = _batches(data, random.Random(7))
    assert len(batches) > partial.IN_FLIGHT
    sink = _through_sink(tmp_path / "partial", batches, durable_every=2)
    _assert_whole(sink, tmp_path / "partial", data)


def test_small_and_big_batches_mixed_stay_in_order(tmp_path: Path) -> None:
    # Small batches are written and hashed by one job, big ones in two lanes: the hand-over
    # between the two ways keeps both the file and md5 in order.
    sizes = [300_000, partial.TWO_LANES, partial.TWO_LANES, 200_000, 50_000, partial.TWO_LANES + 1]
    data = os.urandom(sum(sizes))
    batches, start = [], 0
    for size in sizes:
        batches.append([data[start : start + 1000], data[start + 1000 : start + size]])
        start += size
    sink = _through_sink(tmp_path / "partial", batches, durable_every=3)
    _assert_whole(sink, tmp_path / "partial", data)


# Small batches are written and hashed by one job, big ones in two lanes: both ways stop.
@pytest.mark.parametrize("size", [100_000, partial.TWO_LANES])
def test_nothing_is_written_or_counted_after_a_batch_that_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    calls = {"n": 0}

    def failing_second(path: str, chunks: list[bytes], offset: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_at(path, chunks, offset)

    monkeypatch.setattr(partial, "write_at", failing_second)
    batch = [b"x" * size]

    async def run() -> PartialFile:
        sink = _sink(tmp_path / "partial")
        with pytest.raises(OSError, match="No space"):
            for _ in range(6):
                await sink.write(batch, size, durable=True)
            await sink.drain(syncing=True)
        with contextlib.suppress(OSError):  # what is still in flight fails the same way
            await sink.drain(syncing=True)
        return sink

    sink = asyncio.run(run())
    assert calls["n"] == 2  # the batches after the failed one were never written
    assert sink.synced <= size
    assert (tmp_path / "partial").stat().st_size == size
