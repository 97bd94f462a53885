"""The download flow: a temporary link (cloud disk) or the direct link (image bed), fetched
into ``<name>.part`` with HTTP Range requests, so an interrupted download continues where it
stopped; checked against the file's size and md5, then renamed into place."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from openpan.client import _api, _tree
from openpan.client._exceptions import DownloadError, TransportError
from openpan.client._models import DiskFile, Download, OssFile, Space
from openpan.client._protocol import Blocking, Fetch, Flow, RetryPolicy, Sleep, call
from openpan.client._upload import hash_file


def _target(dest: Path, filename: str) -> Path:
    target = dest / filename if dest.is_dir() else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _truncate(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb"):
        pass


def _finish(part: Path, target: Path) -> None:
    os.replace(part, target)


def _drop(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def download(
    space: Space,
    file_id: str | int,
    dest: Path,
    *,
    policy: RetryPolicy,
    resume: bool = True,
    verify: bool = True,
    progress: Callable[[int], None] | None = None,
) -> Flow[Download]:
    """Download one file to ``dest`` (a directory keeps the file's own name)."""
    entry: OssFile | DiskFile = yield _tree.detail(space, file_id)
    if entry.is_dir:
        raise DownloadError(f"{entry.filename!r} is a directory")
    target: Path = yield Blocking(_target, (dest, entry.filename))
    part = target.with_name(target.name + ".part")
    offset: int = (yield Blocking(_size, (part,))) if resume else 0
    if offset > entry.size or not resume:
        yield Blocking(_truncate, (part,))
        offset = 0
    start = offset
    if progress and offset:
        progress(offset)
    url = yield from _url(entry)
    attempt = 0
    while True:
        try:
            size: int = yield Fetch(url, part, offset, progress)
            break
        except TransportError as exc:
            if attempt >= policy.retries:
                raise DownloadError(f"{entry.filename}: {exc.message}") from exc
            yield Sleep(policy.exponential(attempt))
            attempt += 1
            offset = yield Blocking(_size, (part,))
            if exc.status_code in (401, 403, 404, 410):
                url = yield from _url(entry)  # the temporary link may have expired
    if size != entry.size:
        raise DownloadError(f"{entry.filename}: got {size} bytes, expected {entry.size}")
    if verify and entry.etag:
        md5 = yield Blocking(hash_file, (part,))
        if md5 != entry.etag.lower():
            yield Blocking(_drop, (part,))
            raise DownloadError(f"{entry.filename}: md5 {md5} does not match {entry.etag}")
    yield Blocking(_finish, (part, target))
    return Download(path=target, size=size, received=size - start, resumed=start > 0)


def _url(entry: OssFile | DiskFile) -> Flow[str]:
    if isinstance(entry, OssFile):
        return entry.download_url
    info = yield from call(_api.download_info(entry.file_id))
    return info.download_url
