"""The upload flow shared by both clients, for both spaces.

1. The source is read once to hash it (a stream is spooled to a temporary file while it is
   hashed, so it can be sliced afterwards).
2. ``create`` — the server may already hold the bytes (instant upload, nothing sent).
3. Slices of the server's ``sliceSize`` are read and sent in parallel (at most ``concurrency``
   in memory), each re-sent with backoff when its PUT fails.
4. ``upload_complete``, then ``upload_async_result`` once a second while the server verifies.

A small state file (one per source file and destination) records the upload session, so an
interrupted upload run again asks ``list_upload_parts`` what arrived and sends only the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal

from openpan.client import _api, _tree
from openpan.client._exceptions import (
    APIError,
    ClientError,
    StillVerifyingError,
    TransportError,
    UploadError,
    WaitTimeout,
)
from openpan.client._models import (
    DirUpload,
    DiskFile,
    OssFile,
    Space,
    UploadedFile,
    UploadFailure,
    UploadPart,
)
from openpan.client._protocol import (
    Blocking,
    Call,
    Flow,
    Parallel,
    Put,
    RetryPolicy,
    Sleep,
    SlotPool,
    call,
)

CHUNK = 1024 * 1024
FILES_AT_ONCE = 8
Protocol = Literal["v1", "v2"]
IfExists = Literal["error", "skip", "overwrite"]
Source = str | os.PathLike[str] | BinaryIO
ByteProgress = Callable[[int], None]


# Local files -------------------------------------------------------------------------------


@dataclass
class LocalFile:
    """A file ready to upload: where its bytes are, what it is called, its size and md5."""

    path: Path
    name: str
    size: int
    mtime_ns: int
    label: str
    md5: str = ""
    temporary: bool = False


def open_source(source: Source, name: str | None, spool_dir: Path | None = None) -> LocalFile:
    """Stat a path, or spool a stream to a temporary file while hashing it."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        stat = path.stat()
        if not path.is_file():
            raise ClientError(f"not a regular file: {path}")
        return LocalFile(path, name or path.name, stat.st_size, stat.st_mtime_ns, str(path))
    label = name or Path(str(getattr(source, "name", "") or "stream")).name
    if not label:
        raise ClientError("give a name= for a stream without one")
    digest = hashlib.md5()
    size = 0
    fd, tmp = tempfile.mkstemp(prefix="openpan-upload-", dir=spool_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return LocalFile(Path(tmp), label, size, 0, label, digest.hexdigest(), temporary=True)


def hash_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_slice(path: Path, offset: int, length: int) -> tuple[bytes, str]:
    """One slice's bytes and md5."""
    with open(path, "rb") as src:
        src.seek(offset)
        data = src.read(length)
    if len(data) != length:
        raise UploadError(f"{path} changed while uploading (short read at {offset})")
    return data, hashlib.md5(data).hexdigest()


def discard(local: LocalFile) -> None:
    if local.temporary:
        with contextlib.suppress(OSError):
            local.path.unlink()


# Resumable state ---------------------------------------------------------------------------


class UploadStates:
    """One small JSON file per unfinished upload, keyed by source path and destination."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def key(self, base_url: str, target: Target, local: LocalFile) -> str:
        ident = json.dumps(
            [base_url, target.space, str(target.parent_id), target.name, str(local.path.resolve())],
            ensure_ascii=False,
        )
        return hashlib.sha256(ident.encode()).hexdigest()[:40]

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.directory / f"{key}.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save(self, key: str, record: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{key}.tmp"
        tmp.write_text(json.dumps(record), "utf-8")
        os.replace(tmp, self.directory / f"{key}.json")

    def remove(self, key: str) -> None:
        with contextlib.suppress(OSError):
            (self.directory / f"{key}.json").unlink()


# Space-specific calls ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a file goes and how it is sent."""

    space: Space
    parent_id: str | int
    name: str
    duplicate: int | None = None
    protocol: Protocol = "v1"

    @property
    def v2(self) -> bool:
        return self.space == "disk" and self.protocol == "v2"

    def create(self, md5: str, size: int) -> Call[Any]:
        if self.space == "oss":
            return _api.oss_create(str(self.parent_id), self.name, md5, size)
        make = _api.disk_create_v2 if self.v2 else _api.disk_create
        return make(int(self.parent_id), self.name, md5, size, duplicate=self.duplicate)

    def _steps(self) -> _api.UploadSteps[Any]:
        return _api.OSS_STEPS if self.space == "oss" else _api.DISK_STEPS

    def parts(self, preupload_id: str) -> Call[list[UploadPart]]:
        return self._steps().list_upload_parts(preupload_id)

    def upload_url(self, preupload_id: str, number: int) -> Call[Any]:
        return self._steps().get_upload_url(preupload_id, number)

    def complete(self, preupload_id: str) -> Call[Any]:
        if self.v2:
            return _api.disk_upload_complete_v2(preupload_id)
        return self._steps().upload_complete(preupload_id)

    def async_result(self, preupload_id: str) -> Call[Any]:
        return self._steps().upload_async_result(preupload_id)


@dataclass
class Settings:
    """Per-call upload options (the parts of ``upload``'s signature the flow needs)."""

    base_url: str
    policy: RetryPolicy
    states: UploadStates | None
    concurrency: int = 4
    link: bool = True
    progress: ByteProgress | None = None
    complete_timeout: float | None = 3600.0
    spool_dir: Path | None = None
    slots: SlotPool | None = field(default=None)


# The flow ----------------------------------------------------------------------------------


def slices(size: int, slice_size: int) -> Iterator[tuple[int, int, int]]:
    """(number, offset, length) of every slice; an empty file is one empty slice."""
    count = max(1, -(-size // slice_size))
    for number in range(1, count + 1):
        offset = (number - 1) * slice_size
        yield number, offset, min(slice_size, size - offset)


def send_slice(
    target: Target,
    local: LocalFile,
    session: dict[str, Any],
    number: int,
    offset: int,
    length: int,
    held: UploadPart | None,
    settings: Settings,
) -> Flow[int]:
    """Send one slice unless the server already holds it intact; returns the bytes sent."""
    data, md5 = yield Blocking(read_slice, (local.path, offset, length))
    if held is not None and held.size == length and held.etag.lower() == md5:
        if settings.progress:
            settings.progress(length)
        return 0
    pre = session["preupload_id"]
    attempt = 0
    while True:
        try:
            if target.v2:
                server = session.get("server") or settings.base_url
                yield _api.disk_upload_slice_v2(server, pre, number, md5, data)
            else:
                url = yield target.upload_url(pre, number)
                yield Put(url.presigned_url, data)
            break
        except (TransportError, APIError) as exc:
            # A dropped connection, a refused PUT or (V2) a slice md5 the server did not get
            # right: send the slice again. A vanished session is not worth retrying.
            retryable = isinstance(exc, TransportError) or exc.code == 1
            if not retryable or attempt >= settings.policy.retries:
                raise UploadError(
                    f"{local.label}: slice {number} failed {attempt + 1} times: {exc}"
                ) from exc
            yield Sleep(settings.policy.exponential(attempt))
            attempt += 1
    if settings.progress:
        settings.progress(length)
    return length


def complete(target: Target, pre: str, settings: Settings, resumed: bool) -> Flow[str | int]:
    """Finish the upload and wait while the server verifies it; returns the file ID."""
    deadline = None
    if settings.complete_timeout is not None:
        deadline = time.monotonic() + settings.complete_timeout

    def waited() -> Flow[None]:
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout(f"the server is still verifying the upload {pre}")
        yield Sleep(1.0)  # the documents ask for at least a second between polls

    if target.v2:
        while True:
            try:
                result = yield target.complete(pre)
            except StillVerifyingError:
                result = None
            if result is not None and result.completed and result.file_id:
                return result.file_id
            yield from waited()
    try:
        done = yield target.complete(pre)
    except APIError:
        if not resumed:
            raise
        done = None  # completed before the interruption: its result is still there
    if done is not None and done.completed and done.file_id:
        return done.file_id
    if done is not None and not done.is_async:
        raise UploadError(f"the server did not complete the upload {pre}")
    while True:
        result = yield target.async_result(pre)
        if result.completed and result.file_id:
            return result.file_id
        yield from waited()


def upload(
    source: Source | LocalFile,
    target: Target,
    settings: Settings,
    name: str | None = None,
    if_exists: IfExists = "error",
    listing: dict[str, _tree.Entry] | None = None,
) -> Flow[UploadedFile]:
    """Upload one file (see the module docstring); returns it with its link.

    ``if_exists`` decides about a file of the same name already in the directory: "error"
    leaves it to the server (a clash is an error unless ``duplicate`` says otherwise), "skip"
    leaves an identical file alone and refuses a different one, "overwrite" replaces a
    different one. ``listing`` is the directory's entries by name, if already known.
    """
    local: LocalFile = (
        source
        if isinstance(source, LocalFile)
        else (yield Blocking(open_source, (source, name, settings.spool_dir)))
    )
    if not target.name:
        target = replace(target, name=local.name)
    try:
        if if_exists != "error":
            if listing is None:
                entries = yield from _tree.children(target.space, target.parent_id)
                listing = {e.filename: e for e in entries}
            existing = listing.get(target.name)
            if existing is not None:
                if existing.is_dir:
                    raise ClientError(f"a directory named {target.name!r} is in the way")
                if not local.md5:
                    local.md5 = yield Blocking(hash_file, (local.path,))
                if existing.size == local.size and existing.etag.lower() == local.md5:
                    if settings.progress:
                        settings.progress(local.size)
                    return UploadedFile(
                        file=existing,
                        link=(yield from _link(existing, settings.link)),
                        instant=True,
                        sent_bytes=0,
                        source=local.label,
                        existed=True,
                    )
                if if_exists != "overwrite":
                    raise ClientError(
                        f"{target.name!r} is already there with other content "
                        "(overwrite replaces it)"
                    )
                if target.space == "oss":
                    # The image bed cannot overwrite or rename: the old image goes first.
                    yield _api.oss_delete([str(existing.file_id)])
                else:
                    target = replace(target, duplicate=2)
        return (yield from _upload(local, target, settings))
    finally:
        discard(local)


def _upload(local: LocalFile, target: Target, settings: Settings) -> Flow[UploadedFile]:
    states = settings.states if not local.temporary else None
    key = states.key(settings.base_url, target, local) if states else ""
    record = states.load(key) if states else None
    if record and (
        record.get("size") != local.size
        or record.get("mtime_ns") != local.mtime_ns
        or record.get("protocol") != target.protocol
    ):
        assert states is not None
        states.remove(key)
        record = None
    if not local.md5:
        local.md5 = record["md5"] if record else (yield Blocking(hash_file, (local.path,)))

    held: dict[int, UploadPart] = {}
    session: dict[str, Any] | None = None
    resumed = False
    if record is not None and states is not None:
        try:
            if not target.v2:  # V2 has no way to ask which slices arrived: all are sent again
                for part in (yield target.parts(record["preupload_id"])):
                    held[part.part_number] = part
            session, resumed = record, True
        except APIError:
            states.remove(key)  # expired or finished: start over (likely instantly)

    file_id: str | int
    sent = 0
    if session is None:
        created = yield target.create(local.md5, local.size)
        if created.reuse:
            file_id = created.file_id
        else:
            session = {
                "preupload_id": created.preupload_id,
                "slice_size": created.slice_size,
                "server": created.servers[0].rstrip("/") if created.servers else "",
                "md5": local.md5,
                "size": local.size,
                "mtime_ns": local.mtime_ns,
                "protocol": target.protocol,
                "created": time.time(),
            }
            if states is not None:
                states.save(key, session)
    if session is not None:
        slice_size = int(session["slice_size"])
        if slice_size <= 0:
            raise UploadError(f"the server gave an invalid sliceSize {slice_size}")
        sent_list = yield Parallel(
            (
                send_slice(target, local, session, n, off, ln, held.get(n), settings)
                for n, off, ln in slices(local.size, slice_size)
            ),
            limit=max(1, settings.concurrency),
            slots=settings.slots,
        )
        sent = sum(sent_list)
        file_id = yield from complete(target, session["preupload_id"], settings, resumed)
        if states is not None:
            states.remove(key)
    elif settings.progress:
        settings.progress(local.size)

    entry: OssFile | DiskFile = yield _tree.detail(target.space, file_id)
    return UploadedFile(
        file=entry,
        link=(yield from _link(entry, settings.link)),
        instant=session is None,
        sent_bytes=sent,
        source=local.label,
        resumed=resumed,
    )


def _link(entry: OssFile | DiskFile, want: bool) -> Flow[str | None]:
    if isinstance(entry, OssFile):
        return entry.download_url
    if not want:
        return None
    info = yield from call(_api.download_info(entry.file_id))
    return info.download_url


# Trees -------------------------------------------------------------------------------------


def walk(directory: Path) -> list[tuple[tuple[str, ...], list[Path]]]:
    """Every directory under ``directory`` (parents first) with its regular files, sorted."""
    if not directory.is_dir():
        raise ClientError(f"not a directory: {directory}")
    found: list[tuple[tuple[str, ...], list[Path]]] = []
    for here, dirs, files in os.walk(directory):
        dirs.sort()
        rel = Path(here).relative_to(directory).parts
        paths = [Path(here) / f for f in sorted(files)]
        found.append((tuple(rel), [p for p in paths if p.is_file()]))
    return found


def upload_dir(
    directory: Path,
    dest_id: str | int,
    space: Space,
    settings: Settings,
    *,
    if_exists: IfExists = "skip",
    protocol: Protocol = "v1",
    progress: Callable[[str, int], None] | None = None,
    on_file: Callable[[UploadedFile | UploadFailure], None] | None = None,
) -> Flow[DirUpload]:
    """Upload a tree into ``dest_id``: directories made as needed, each file as ``upload`` does
    with ``if_exists`` (by default files already there with the same content are left alone,
    and every other file is uploaded, instantly when the server has its bytes)."""
    tree = yield Blocking(walk, (directory,))
    dir_ids: dict[tuple[str, ...], str | int] = {(): dest_id}
    listings: dict[tuple[str, ...], dict[str, _tree.Entry]] = {}
    for rel, _files in tree:
        there = listings[rel[:-1]].get(rel[-1]) if rel else None
        if rel and there is None:
            dir_ids[rel] = yield from _tree.mkdir(space, dir_ids[rel[:-1]], rel[-1])
            listings[rel] = {}  # made just now, so empty: no need to ask
            continue
        if there is not None:
            if not there.is_dir:
                raise ClientError(f"{'/'.join(rel)!r} exists and is not a directory")
            dir_ids[rel] = there.file_id
        listing = yield from _tree.children(space, dir_ids[rel])
        listings[rel] = {e.filename: e for e in listing}

    shared = SlotPool(max(1, settings.concurrency))

    def one(path: Path, rel: tuple[str, ...]) -> Flow[UploadedFile | UploadFailure]:
        label = str(path)
        per_file = replace(
            settings,
            slots=shared,
            progress=(lambda n: progress(label, n)) if progress else None,
        )
        target = Target(space, dir_ids[rel], path.name, protocol=protocol)
        result: UploadedFile | UploadFailure
        try:
            result = yield from upload(
                path, target, per_file, if_exists=if_exists, listing=listings[rel]
            )
        except (ClientError, OSError) as exc:
            result = UploadFailure(source=label, error=exc)
        if on_file:
            on_file(result)
        return result

    results = yield Parallel(
        (one(path, rel) for rel, files in tree for path in files),
        # Files in flight hold no slice memory (their slices wait for a shared slot), but each
        # may start threads of its own in the blocking client: a few files at once is plenty.
        limit=max(1, min(settings.concurrency, FILES_AT_ONCE)),
    )
    return DirUpload(
        dir_id=dest_id,
        files=[r for r in results if isinstance(r, UploadedFile)],
        failures=[r for r in results if isinstance(r, UploadFailure)],
    )
