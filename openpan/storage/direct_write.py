"""Writing large streams to a file past the page cache (``O_DIRECT``), where the file system
allows it.

Why: writing into the page cache means taking fresh memory pages, and on a virtual machine that
returns freed memory to its host (virtio-balloon free page reporting) every fresh page is a
fault the host must serve. Measured on such a machine: 1 GiB written through the page cache
cost 2.0–3.5 CPU seconds, 0.3 s when the pages happened to be recycled; with ``O_DIRECT``
0.1 s (dd, 4 MiB blocks, 1.2 GB/s). The bytes of a download are not read again soon, and are
synced before they count anyway, so the page cache buys nothing for them.

``O_DIRECT`` needs the memory, the file offset and the length aligned to the device's block
size: the whole blocks of a write are copied into a reused aligned buffer and written from
there; the partial blocks at either end go through the page cache as before (the kernel keeps
the two coherent). A file system that refuses ``O_DIRECT`` (EINVAL: tmpfs on older kernels,
some FUSE and overlay mounts) gets page-cache writes from then on.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import threading
from collections.abc import Iterator, Sequence

log = logging.getLogger("openpan.storage")

# Buffers one pwritev may take (Linux's IOV_MAX is 1024).
IOV_MAX = 512
# 4096 satisfies devices with 512-byte and 4 KiB logical blocks alike.
ALIGN = 4096
# One aligned buffer per concurrent writer, reused: memory already touched costs no faults.
BUFFER_SIZE = 1024 * 1024

_O_DIRECT: int = getattr(os, "O_DIRECT", 0)
_direct_ok = _O_DIRECT != 0  # switched off for good by the first EINVAL
_buffers: list[mmap.mmap] = []
_buffers_lock = threading.Lock()


def write_at(path: str, chunks: Sequence[bytes], offset: int) -> None:
    """Write ``chunks``, one after the other, at ``offset`` of the file at ``path``.

    Whole aligned blocks bypass the page cache when the file system allows it. Returns when
    the bytes are written (not synced: the caller's ``fdatasync`` does that, as before)."""
    global _direct_ok
    size = sum(len(chunk) for chunk in chunks)
    first = -(-offset // ALIGN) * ALIGN  # the first block boundary at or after offset
    last = (offset + size) // ALIGN * ALIGN  # the last one at or before the end
    if not _direct_ok or last - first < ALIGN:
        _write_cached(path, list(_views(chunks, 0, size)), offset)
        return
    if first > offset:
        _write_cached(path, list(_views(chunks, 0, first - offset)), offset)
    if offset + size > last:
        _write_cached(path, list(_views(chunks, last - offset, offset + size - last)), last)
    try:
        _write_direct(path, chunks, offset, first, last)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _direct_ok = False
        log.info("O_DIRECT refused for %s (%s): writing through the page cache", path, exc)
        _write_cached(path, list(_views(chunks, first - offset, last - first)), first)


def _write_direct(path: str, chunks: Sequence[bytes], offset: int, first: int, last: int) -> None:
    """Bytes ``first``..``last`` of the file (block-aligned) from ``chunks`` (which start at
    ``offset``), a buffer at a time."""
    buffer = _take_buffer()
    fd = os.open(path, os.O_WRONLY | _O_DIRECT)
    try:
        with memoryview(buffer) as whole:
            position = first
            while position < last:
                length = min(BUFFER_SIZE, last - position)
                filled = 0
                for view in _views(chunks, position - offset, length):
                    whole[filled : filled + len(view)] = view
                    filled += len(view)
                done = 0
                while done < length:
                    done += os.pwrite(fd, whole[done:length], position + done)
                position += length
    finally:
        os.close(fd)
        _give_back(buffer)


def _write_cached(path: str, views: list[memoryview], offset: int) -> None:
    # Its own descriptor per write: a batch still being written after its download was
    # cancelled can never land in a file descriptor number reused by something else.
    fd = os.open(path, os.O_WRONLY)
    try:
        pwrite_all(fd, views, offset)
    finally:
        os.close(fd)


def pwrite_all(fd: int, views: list[memoryview], offset: int) -> None:
    """Write ``views``, one after the other, at ``offset`` of ``fd``, through the page cache:
    as few ``pwritev`` calls as the kernel allows, no joining copy. Consumes ``views``."""
    while views:
        written = os.pwritev(fd, views[:IOV_MAX], offset)
        offset += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _views(chunks: Sequence[bytes], skip: int, length: int) -> Iterator[memoryview]:
    """The bytes ``skip``..``skip + length`` of the chunks laid end to end, without copying."""
    for chunk in chunks:
        if length <= 0:
            return
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        view = memoryview(chunk)[skip : skip + length]
        skip = 0
        length -= len(view)
        yield view


def _take_buffer() -> mmap.mmap:
    with _buffers_lock:
        if _buffers:
            return _buffers.pop()
    # Anonymous mappings are page-aligned, hence block-aligned.
    return mmap.mmap(-1, BUFFER_SIZE)


def _give_back(buffer: mmap.mmap) -> None:
    with _buffers_lock:
        _buffers.append(buffer)
