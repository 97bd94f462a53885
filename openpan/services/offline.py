"""Offline downloads (离线下载): a URL fetched in the background into the cloud disk or image bed.

A task is a row in ``offline_tasks``. Creating one checks everything that can be checked at once
(URL, name, target directory), so bad input is an error now rather than a task failing later.

Slots: at most ``offline_max_active`` tasks download at once, and at most
``offline_max_active_per_user`` of one user; a task holds a slot (``active``) from the moment its
job is queued until it ends, and the transaction that ends a task hands the freed slot to the
oldest waiting task. So tasks beyond the limits queue in the database, not in memory, and
nothing polls for a slot.

A download streams into a temporary file while it is hashed (md5, the etag), one batch written
in a worker thread while the next is received, so memory stays flat whatever the size. Progress
is written at most every ``offline_progress_interval`` seconds, after the bytes it reports are
on disk: a download cut off (a lost connection, a restart) resumes from there with ``Range``
when the origin still serves the same resource. Transient failures (connection lost, timeout,
5xx, 429) are retried with backoff, status 3 meanwhile; permanent ones (404, 403, too large,
not an image, too many redirects, a refused address) fail at once with a reason a person can
read. The finished file becomes a blob (no copy if identical bytes are stored already) and then
a file row, in that order, so a crash never shows a file whose bytes are missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.message
import functools
import hashlib
import logging
import os
import random
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote

import aiohttp
import httpx
from sqlalchemy import Update, and_, bindparam, func, insert, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from yarl import URL

from openpan.clock import utcnow
from openpan.db.engine import dialect_name, insert_unless_taken, serialize
from openpan.db.models import (
    SPACE_DISK,
    SPACE_OSS,
    File,
    OfflineTask,
    User,
    from_row,
    table_of,
)
from openpan.db.session import Session, hot
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.jobs.runner import Retry, enqueue, settle_current_job
from openpan.services import blobs, callbacks, disk, oss, tree
from openpan.services.context import Context
from openpan.services.fetch_guard import (
    DestinationRefused,
    GuardedSession,
    allowlist_from,
    check_literal,
)
from openpan.services.images import SNIFF_BYTES, sniff_image
from openpan.services.names import (
    FORBIDDEN,
    IMAGE_EXTENSIONS,
    MAX_NAME,
    check_image_name,
    check_name,
    extension,
)
from openpan.settings import Settings
from openpan.storage import StorageError
from openpan.storage.direct_write import write_at

log = logging.getLogger("openpan.offline")

DOWNLOAD_JOB = "offline.download"
DEFAULT_DIR = "来自:离线下载"
MAX_URL = 4096

RUNNING, FAILED, SUCCEEDED, RETRYING = 0, 1, 2, 3
UNFINISHED = (RUNNING, RETRYING)

# The statements every task runs, in Core and written once: with the ORM, their own cost was
# most of what a small download cost the server (see ``Database.rows``).
_tasks, _users, _files = table_of(OfflineTask), table_of(User), table_of(File)
_TASK = select(_tasks).where(_tasks.c.id == bindparam("id"))
_TASK_AND_USER = (
    select(_tasks, _users)
    .select_from(_tasks.outerjoin(_users, _users.c.id == _tasks.c.user_id))
    .where(_tasks.c.id == bindparam("id"))
)
# A file under a name no live entry of its directory holds; no row if one does (the common
# case costs one statement, not a look and an insert).
_INSERT_FILE_IF_FREE = {
    dialect: hot(statement.returning(_files.c.id))
    for dialect, statement in insert_unless_taken(_files).items()
}
_INSERT_FILE = hot(insert(_files).returning(_files.c.id))

# Download slots: a task holds one while ``active``. The limits, as SQL, so that a task's
# creation and a task's end each decide in the statement that writes.
_holding = _tasks.alias("holding")
_HELD = select(func.count()).select_from(_holding).where(_holding.c.active == true())
_FREE_SLOT = _HELD.scalar_subquery() < bindparam("max_active")
# A task created now starts at once if a slot is free and its user is below their limit. Only
# the new task needs looking at: every transaction that frees a slot admits (``admit``), which
# leaves no waiting task that fits, so an older task of the user still waiting means the user
# is at their limit.
_INSERT_TASK = hot(
    insert(_tasks)
    .values(
        active=and_(
            _FREE_SLOT,
            _HELD.where(_holding.c.user_id == bindparam("owner")).scalar_subquery()
            < bindparam("per_user"),
        )
    )
    .returning(_tasks.c.id, _tasks.c.active)
)
# The oldest waiting task of a user below their limit, if a slot is free, takes it.
_waiting = _tasks.alias("waiting")
_ADMIT_ONE = hot(
    update(_tasks)
    .where(
        _tasks.c.id
        == select(_waiting.c.id)
        .where(
            _waiting.c.status == RUNNING,
            _waiting.c.active.is_(False),
            _waiting.c.user_id.not_in(
                select(_holding.c.user_id)
                .where(_holding.c.active == true())
                .group_by(_holding.c.user_id)
                .having(func.count() >= bindparam("per_user"))
            ),
            _FREE_SLOT,
        )
        .order_by(_waiting.c.id)
        .limit(1)
        .scalar_subquery()
    )
    .values(active=True)
    .returning(_tasks.c.id)
)
# Not ``in_``: a list SQLAlchemy expands at each execution would keep the statements that use
# it off the direct path (``openpan.db.direct``).
_unfinished = or_(*(_tasks.c.status == status for status in UNFINISHED))


@functools.lru_cache(maxsize=256)
def _task_update(columns: frozenset[str]) -> Update:
    """``UPDATE`` of these columns of task ``task_id`` while it is unfinished (values
    ``new_<column>``): one statement per set of columns, so each is compiled once."""
    return hot(
        update(_tasks)
        .where(_tasks.c.id == bindparam("task_id"), _unfinished)
        .values({name: bindparam(f"new_{name}", type_=_tasks.c[name].type) for name in columns})
    )


async def _update_unfinished(session: Session, task_id: int, values: dict[str, Any]) -> int:
    """Write ``values`` to the task unless it has ended; how many rows changed (0 or 1)."""
    parameters = {f"new_{name}": value for name, value in values.items()}
    parameters["task_id"] = task_id
    result = await session.execute(_task_update(frozenset(values)), parameters)
    return int(result.rowcount)


# Bytes gathered from the network before they are handed to the writing and hashing threads:
# each hand-over costs thread hops, which a busy machine makes slow. Smaller at first, larger
# once a download proves big; two batches are in memory. 200 downloads of 5 MB at once, 2 MiB
# against 1 MiB at first: 4.82 vs 5.20 s (medians of 5 alternating runs, all 5 faster), the
# server's peak memory the same (145 MB).
BATCH = 2 * 1024 * 1024
BIG_BATCH = 4 * 1024 * 1024
# aiohttp stops reading a socket when twice this much of its body waits unread, and resumes
# below this: larger than its default (64 KiB), so receiving does not pause at every batch
# hand-over.
READ_BUFFER = 1024 * 1024
MAX_BACKOFF = 300.0
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})


# Creation ---------------------------------------------------------------------------------------


def check_url(field_name: str, url: str, settings: Settings) -> str:
    """An http(s) URL a download may fetch, or a ``FieldError`` saying why not."""
    text = url.strip()
    if not text:
        raise FieldError(field_name, "不能为空 (required)")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise FieldError(field_name, "不能包含空白或控制字符 (no spaces or control characters)")
    try:
        parsed = httpx.URL(text)
        host = parsed.host  # decoded here: a malformed IDNA name raises
        _url(text)  # what the download will parse it with, so it fails now rather than then
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise FieldError(field_name, f"不是有效的链接 (not a valid URL: {exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise FieldError(field_name, "只支持http/https链接 (only http and https URLs)")
    if not host:
        raise FieldError(field_name, "缺少主机名 (the URL has no host)")
    refused = check_literal(host, allowlist_from(settings.fetch_allow))
    if refused:
        raise FieldError(field_name, refused)
    return text


def _check_file_name(space: str, name: str) -> str:
    if space == SPACE_OSS:
        return check_image_name("fileName", name)
    return check_name("fileName", name)


async def _creation_target(session: Session, user: User, space: str, target: int | str) -> int:
    """The directory a new task will write into: its ID, or 0 for the default directory."""
    if space == SPACE_OSS:
        # "0" is how clients that send numbers say "the root".
        oss_id = "" if str(target) == "0" else str(target)
        entry = await oss.resolve_dir(session, user, "businessDirID", oss_id)
        return entry.id if entry else tree.ROOT
    return await disk.live_dir(session, user, "dirID", int(target))


async def create(
    ctx: Context,
    user: User,
    space: str,
    *,
    url: str,
    file_name: str | None,
    target: int | str,
    callback_url: str | None,
) -> int:
    """Record a download of ``url`` into ``target`` (0 / "" or absent: the ``来自:离线下载``
    directory) and start it as soon as a slot is free; returns the task's ID."""
    url = check_url("url", url, ctx.settings)
    if callback_url is not None:
        callback_url = check_url("callBackUrl", callback_url, ctx.settings)
    if file_name is not None:
        file_name = _check_file_name(space, file_name)
    limit = ctx.settings.offline_max_unfinished_per_user
    async with ctx.db.write() as session:
        parent_id = await _creation_target(session, user, space, target)
        if limit:
            unfinished = await session.scalar(
                select(func.count(_tasks.c.id)).where(_tasks.c.user_id == user.id, _unfinished)
            )
            if (unfinished or 0) >= limit:
                raise OpenpanError(
                    f"离线下载任务过多, 请等待已有任务完成 (too many unfinished offline tasks: "
                    f"at most {limit} at once)"
                )
        # One admission at a time across processes, or two would hand out the same slot.
        await serialize(session, "offline.admit")
        now = utcnow()
        task_id, admitted = (
            await session.execute(
                _INSERT_TASK,
                {
                    "user_id": user.id,
                    "space": space,
                    "url": url,
                    "file_name": file_name,
                    "target_parent_id": parent_id,
                    "callback_url": callback_url,
                    "created_at": now,
                    "updated_at": now,
                    "owner": user.id,
                    **_limits(ctx.settings),
                },
            )
        ).one()
        if admitted:
            await enqueue(session, DOWNLOAD_JOB, {"task_id": task_id})
    if admitted:
        ctx.jobs.notify(DOWNLOAD_JOB)
    return int(task_id)


async def get_task(ctx: Context, user: User, space: str, task_id: int) -> OfflineTask:
    """A task of this user in this space; another user's answers exactly like a missing one."""
    async with ctx.db.rows() as connection:
        row = (await connection.execute(_TASK, {"id": task_id})).first()
    if row is None or row.user_id != user.id or row.space != space:
        raise NotFound(f"taskID 离线下载任务不存在 (no such task: {task_id})")
    return from_row(OfflineTask, row)


# Slots ------------------------------------------------------------------------------------------


async def admit(session: Session, settings: Settings, at_most: int | None = None) -> int:
    """Give free download slots to waiting tasks, oldest first, each user within their limit,
    and queue their jobs (in the caller's transaction); ``at_most`` that many. Returns how many
    were admitted."""
    # One admission at a time across processes, or two would hand out the same free slot (or
    # the same waiting task) at once.
    await serialize(session, "offline.admit")
    values = _limits(settings)
    admitted = 0
    while at_most is None or admitted < at_most:
        task_id = await session.scalar(_ADMIT_ONE, values)
        if task_id is None:
            break
        await enqueue(session, DOWNLOAD_JOB, {"task_id": task_id})
        admitted += 1
    return admitted


def _limits(settings: Settings) -> dict[str, int]:
    return {
        "max_active": settings.offline_max_active,
        "per_user": settings.offline_max_active_per_user,
    }


async def admit_waiting(ctx: Context) -> None:
    """Start waiting tasks that fit the limits now (at start-up: the limits may have grown)."""
    async with ctx.db.write() as session:
        admitted = await admit(session, ctx.settings)
    if admitted:
        ctx.jobs.notify(DOWNLOAD_JOB)


# Names ------------------------------------------------------------------------------------------


def safe_name(name: str) -> str | None:
    """A name an origin suggested, made acceptable: no path, forbidden or control characters,
    shorter than the limit (the extension kept). ``None`` if nothing usable is left."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(
        "_" if ch in FORBIDDEN or unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in name
    ).strip()
    if not cleaned.strip(".") or cleaned in (".", ".."):
        return None
    if len(cleaned) >= MAX_NAME:
        ext = extension(cleaned)
        keep = MAX_NAME - 1 - (len(ext) + 1 if ext and len(ext) <= 16 else 0)
        cleaned = cleaned[:keep].rstrip() + (f".{ext}" if ext and len(ext) <= 16 else "")
    return cleaned


def name_from_response(response: aiohttp.ClientResponse, urls: list[URL]) -> str | None:
    """``Content-Disposition``'s file name, else the last segment of the first URL path (the
    one asked for, then the redirects) that has one."""
    disposition = response.headers.get("content-disposition")
    if disposition:
        try:
            message = email.message.Message()
            message["content-disposition"] = disposition
            suggested = message.get_filename()
        except Exception:  # a malformed header only means no name from it
            suggested = None
        if suggested and (name := safe_name(str(suggested))):
            return name
    for url in urls:
        segment = unquote(url.path.rsplit("/", 1)[-1])
        if segment and (name := safe_name(segment)):
            return name
    return None


def _final_name(task: OfflineTask, sniffed: str | None) -> str:
    name = task.file_name or task.origin_name
    if task.space != SPACE_OSS:
        return name or "download"
    name = name or "image"
    if extension(name) in IMAGE_EXTENSIONS:
        return name
    suffix = f".{sniffed or 'jpg'}"
    return name[: MAX_NAME - 1 - len(suffix)] + suffix


# The download job -------------------------------------------------------------------------------


class _Permanent(Exception):
    """The task fails now; the message is its failReason."""


class _Transient(Exception):
    """Worth another try later; ``retry_after`` is the origin's own hint, if it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Restart(Exception):
    """The bytes kept so far are of no use (the origin ignored Range or changed the resource)."""


@dataclass
class _Fetched:
    md5: str
    size: int
    sniffed: str | None


async def download_job(ctx: Context, payload: dict[str, Any]) -> None:
    """The ``offline.download`` job: run (or resume) one task to its end or its next retry."""
    await _Download(ctx, int(payload["task_id"])).run()


async def close_connections() -> None:
    """Close the connections downloads keep open to origins (at shutdown)."""
    await _DownloadLoop.close()


def _hash(hasher: Any, chunks: list[bytes]) -> None:
    for chunk in chunks:
        hasher.update(chunk)


def _write_and_hash(path: str, chunks: list[bytes], offset: int, hasher: Any) -> None:
    write_at(path, chunks, offset)
    _hash(hasher, chunks)


def _sync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


# Threads that write, hash and sync downloads, kept for the life of the process: anyio's pool
# on the download loop kept starting and retiring threads, a cost paid per batch.
_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="offline-io")
R = TypeVar("R")


async def _in_thread(function: Callable[..., R], *args: Any) -> R:
    return await asyncio.get_running_loop().run_in_executor(_THREADS, function, *args)


def _prepare_partial(path: str, keep: int) -> tuple[Any, bytes, int]:
    """Cut the partial file to the ``keep`` bytes known to be durable and hash them again."""
    hasher = hashlib.md5()
    head = b""
    with open(path, "a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        keep = min(keep, size)
        handle.truncate(keep)
        handle.seek(0)
        left = keep
        while left > 0:
            chunk = handle.read(min(4 * 1024 * 1024, left))
            if not chunk:
                break
            if len(head) < SNIFF_BYTES:
                head += chunk[: SNIFF_BYTES - len(head)]
            hasher.update(chunk)
            left -= len(chunk)
    return hasher, head, keep - left


# Batches handed over to the writing and hashing threads and not done yet: receiving goes on
# while up to this many wait, so a thread that is late for a moment stalls neither the others
# nor the socket. Measured on 2 cores, one 1 GiB download (medians of 4): 3.18 s with one batch
# in flight, 2.99 s with two, 3.00 s with three. Memory: this many batches (4 MiB each at most).
IN_FLIGHT = 2


@dataclass
class _Sink:
    """The partial file. Batches are written and md5-hashed in worker threads, in order, while
    the next batches are received (up to ``IN_FLIGHT`` handed over and not done). A big batch
    is written in one lane and hashed in another, side by side: one big download keeps two
    cores busy. A small batch is written and hashed by one thread job: when many downloads run
    at once the cores are busy anyway, and a hop less per batch is a wake-up less for the
    download loop (200 downloads of 5 MB: 5-10 % sooner, measured alternately against two jobs
    per batch). A batch is written only after the one before it, so a sync after a batch covers
    everything before it. The periodic sync that progress waits for runs in another thread, so
    a slow disk flush never holds up receiving.

    Bytes are written with ``write_at``, past the page cache where the file system allows it:
    no fadvise or sync per batch (asking the kernel to drop each batch from the page cache made
    every write wait for the disk: 3 s/GiB instead of 1); durability comes from the periodic
    sync."""

    path: str
    written: int
    hasher: Any
    synced: int = 0  # bytes known to be on disk
    # Each batch's write and hash together, oldest first.
    _batches: deque[asyncio.Future[Any]] = field(default_factory=deque, init=False)
    _last_write: asyncio.Task[None] | None = field(default=None, init=False)
    _last_hash: asyncio.Task[None] | None = field(default=None, init=False)
    _syncing: asyncio.Task[None] | None = field(default=None, init=False)

    async def write(self, chunks: list[bytes], size: int, durable: bool = False) -> None:
        """Hand ``chunks`` (``size`` bytes) over; waits while ``IN_FLIGHT`` batches are not done.
        ``durable``: sync the file after this batch (``synced`` moves on when done)."""
        while len(self._batches) >= IN_FLIGHT:
            await self._batches.popleft()
        offset = self.written
        self.written += size
        waits_for = (self._last_write, self._last_hash)
        if size < BIG_BATCH:
            both = asyncio.create_task(
                self._write_after(waits_for, chunks, offset, size, durable, hash_too=True)
            )
            self._last_write = self._last_hash = both
            self._batches.append(both)
            return
        self._last_write = asyncio.create_task(
            self._write_after(waits_for[:1], chunks, offset, size, durable)
        )
        self._last_hash = asyncio.create_task(self._hash_after(self._last_hash, chunks))
        self._batches.append(asyncio.gather(self._last_write, self._last_hash))

    async def _write_after(
        self,
        waits_for: tuple[asyncio.Task[None] | None, ...],
        chunks: list[bytes],
        offset: int,
        size: int,
        durable: bool,
        hash_too: bool = False,
    ) -> None:
        for before in waits_for:
            if before is not None:
                # Its failure fails this batch too: nothing is written after a gap (and md5
                # takes the bytes in order).
                await before
        if hash_too:
            await _in_thread(_write_and_hash, self.path, chunks, offset, self.hasher)
        else:
            await _in_thread(write_at, self.path, chunks, offset)
        if durable and (self._syncing is None or self._syncing.done()):
            # A sync still running from last time is skipped: the next interval catches up.
            self._syncing = asyncio.create_task(self._sync_to(offset + size))

    async def _hash_after(self, before: asyncio.Task[None] | None, chunks: list[bytes]) -> None:
        if before is not None:
            await before  # md5 takes the bytes in order
        await _in_thread(_hash, self.hasher, chunks)

    async def _sync_to(self, end: int) -> None:
        with contextlib.suppress(OSError):  # only a progress note is lost; the end syncs again
            await _in_thread(_sync, self.path)
            self.synced = max(self.synced, end)

    async def drain(self, syncing: bool = False) -> None:
        """Wait for every batch handed over (and a periodic sync too, if ``syncing``)."""
        pending = list(self._batches)
        self._batches.clear()
        if syncing and self._syncing is not None:
            pending.append(self._syncing)
            self._syncing = None
        for outcome in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    async def sync(self) -> int:
        """Everything so far on disk; returns how many bytes that is."""
        await self.drain(syncing=True)
        await _in_thread(_sync, self.path)
        self.synced = self.written
        return self.written


class _Download:
    """One run of the download job for one task."""

    def __init__(self, ctx: Context, task_id: int) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.task_id = task_id
        self.task: OfflineTask
        self.user: User | None = None
        self.sink: _Sink | None = None
        self.durable = 0  # bytes of the partial file known to be on disk and recorded
        # Task fields learnt but not yet written: they go with the next write the task needs
        # anyway (progress, retry, end), so a small download costs no extra transaction.
        self.unsaved: dict[str, Any] = {}
        self.reporting: Future[None] | None = None  # a progress write in flight
        self.loop: asyncio.AbstractEventLoop  # the server's, where the database is used

    # The run and its outcomes ----------------------------------------------------------------

    async def run(self) -> None:
        async with self.ctx.db.rows() as connection:
            found = (await connection.execute(_TASK_AND_USER, {"id": self.task_id})).first()
        if found is None or found.status in (FAILED, SUCCEEDED) or not found.active:
            return  # finished already (a job re-run after a crash), or never admitted
        self.task = from_row(OfflineTask, found)
        self.user = None if found._mapping[_users.c.id] is None else from_row(User, found)
        self.loop = asyncio.get_running_loop()
        try:
            fetched = await _DownloadLoop.run(self._fetch())
            await self._commit(fetched)
        except _Permanent as exc:
            await self._fail(str(exc))
        except DestinationRefused as exc:
            await self._fail(f"链接被拒绝: {exc} (destination refused)")
        except _Transient as exc:
            await self._retry_or_fail(str(exc), exc.retry_after)
        except StorageError as exc:
            await self._retry_or_fail(f"存储失败: {exc} (storage error)", None)
        except OpenpanError as exc:
            await self._fail(exc.message)
        except (Retry, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug must not leave the task running forever
            log.exception("offline task %s failed unexpectedly", self.task_id)
            await self._retry_or_fail(f"内部错误: {type(exc).__name__} (internal error)", None)
        finally:
            if self.reporting is not None:  # only when cut off (shutdown): ends were settled
                self.reporting.cancel()

    async def _fail(self, reason: str) -> None:
        await self._settle()
        async with self.ctx.db.write() as session:
            await self._finish(session, FAILED, reason=reason, file_id=None)
        self._drop_partial()
        self._notify_ended()

    async def _retry_or_fail(self, reason: str, retry_after: float | None) -> None:
        attempts = self.task.attempts + 1
        if attempts > self.settings.offline_retries:
            await self._fail(f"{reason}; 已重试{attempts - 1}次 (gave up after retries)")
            return
        await self._settle()
        if self.sink is not None:
            with contextlib.suppress(Exception):  # best effort: resume from less otherwise
                self.durable = await self.sink.sync()
        delay = self.settings.offline_retry_delay * 2 ** (attempts - 1) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        delay = min(delay, MAX_BACKOFF)
        await self._record(
            status=RETRYING,
            attempts=attempts,
            fail_reason=reason,
            bytes_done=self.durable,
            process=self._process(self.durable, self.task.bytes_total),
        )
        raise Retry(delay, reason)

    def _learnt(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self.task, name, value)
        self.unsaved.update(values)

    async def _record(self, **values: Any) -> None:
        """Write what was learnt and ``values`` to the task, unless it has ended meanwhile."""
        learnt, self.unsaved = self.unsaved, {}
        try:
            async with self.ctx.db.write() as session:
                await _update_unfinished(
                    session, self.task_id, {**learnt, **values, "updated_at": utcnow()}
                )
        except BaseException:
            self.unsaved = {**learnt, **self.unsaved}
            raise

    def _report(self, total: int | None) -> None:
        """Record progress in the background, if there is news and no write is in flight: the
        download goes on meanwhile. Only bytes known to be on disk count, so a resume can trust
        the number."""
        assert self.sink is not None
        if self.sink.synced <= self.durable:
            return
        if self.reporting is not None and not self.reporting.done():
            return
        self.durable = self.sink.synced
        self.reporting = asyncio.run_coroutine_threadsafe(
            self._record(bytes_done=self.durable, process=self._process(self.durable, total)),
            self.loop,
        )

    async def _settle(self) -> None:
        """Let a progress write in flight land before the write that ends or pauses the task."""
        if self.reporting is not None:
            reporting, self.reporting = self.reporting, None
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(reporting)

    async def _finish(
        self,
        session: Session,
        status: int,
        *,
        reason: str = "",
        file_id: int | None,
        size: int | None = None,
    ) -> bool:
        """End the task in the caller's transaction: free its slot for the next one, queue the
        callback. False if it had ended already."""
        values: dict[str, Any] = {
            **self.unsaved,
            "status": status,
            "fail_reason": reason,
            "file_id": file_id,
            "active": False,
            "partial_path": None,
            "updated_at": utcnow(),
            "process": 100.0 if status == SUCCEEDED else 0.0,
        }
        if size is not None:
            values.update(bytes_done=size, bytes_total=size)
        if await _update_unfinished(session, self.task_id, values) != 1:
            return False
        if self.task.callback_url:
            await enqueue(session, callbacks.CALLBACK_JOB, {"task_id": self.task_id})
        # One slot was freed: every transaction that frees one admits, so no waiting task fitted
        # before and at most one fits now.
        await admit(session, self.settings, at_most=1)
        await settle_current_job(session)
        return True

    def _notify_ended(self) -> None:
        """Wake the workers of what the task's end queued: the next download, its callback."""
        if self.task.callback_url:
            self.ctx.jobs.notify(DOWNLOAD_JOB, callbacks.CALLBACK_JOB)
        else:
            self.ctx.jobs.notify(DOWNLOAD_JOB)

    def _drop_partial(self) -> None:
        if self.task.partial_path:
            Path(self.task.partial_path).unlink(missing_ok=True)

    # Fetching --------------------------------------------------------------------------------

    def _cap(self) -> int | None:
        if self.task.space == SPACE_OSS:
            return self.settings.oss_max_file_size
        return self.settings.offline_max_size or None

    @staticmethod
    def _process(done: int, total: int | None) -> float:
        if not total:
            return 0.0
        # 100 means done: a download whose bytes are all here is not a file yet.
        return min(99.9, round(done * 100.0 / total, 2))

    async def _start(self) -> bytes:
        """Make the partial file ready; returns the first bytes of what it keeps."""
        task = self.task
        path = task.partial_path
        if path is None or not Path(path).exists():
            # A new, empty file: nothing to cut or hash again, not worth a thread hop.
            path = str(self.ctx.store.temp_path())
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
            hasher, head, kept = hashlib.md5(), b"", 0
        else:
            hasher, head, kept = await _in_thread(_prepare_partial, path, task.bytes_done)
        if path != task.partial_path:
            self._learnt(partial_path=path)
        if kept != task.bytes_done:
            self._learnt(bytes_done=kept)
        if task.status != RUNNING:
            # Shown as retrying until the first progress write says otherwise.
            self._learnt(status=RUNNING)
        self.durable = kept
        self.sink = _Sink(path=path, written=kept, hasher=hasher, synced=kept)
        return head

    async def _fetch(self) -> _Fetched:
        """Receive the bytes (on the download loop, see ``_DownloadLoop``)."""
        try:
            head = await self._start()
            session = _DownloadLoop.session(self.settings)
            for _ in range(3):
                try:
                    return await self._fetch_once(session, bytearray(head))
                except _Restart:
                    await self._restart()
                    head = b""
            raise _Transient(
                "源站不支持断点续传且内容不断变化 (the origin keeps changing the resource)"
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Connection failures, timeouts, broken answers: worth another try.
            raise _Transient(_transport_reason(exc)) from exc
        finally:
            # Nothing of this loop's may be left running once the server's loop takes over.
            if self.sink is not None:
                with contextlib.suppress(Exception):
                    await self.sink.drain(syncing=True)

    async def _restart(self) -> None:
        """Throw away the bytes kept so far and start again from the first byte."""
        assert self.sink is not None
        await self.sink.drain(syncing=True)
        path = self.sink.path
        await _in_thread(os.truncate, path, 0)
        self.sink = _Sink(path=path, written=0, hasher=hashlib.md5())
        self.durable = 0
        self._learnt(bytes_done=0, validator=None)

    async def _open(
        self, session: GuardedSession, offset: int
    ) -> tuple[aiohttp.ClientResponse, list[URL]]:
        """Send the request, following redirects one by one (each through the guard)."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.task.validator:
                headers["If-Range"] = self.task.validator
        try:
            url = _url(self.task.url)
        except ValueError as exc:
            raise _Permanent(f"不是有效的链接 (not a valid URL: {exc})") from exc
        urls = [url]
        for _ in range(self.settings.offline_max_redirects + 1):
            try:
                response = await session.request("GET", url, headers=headers)
            except aiohttp.InvalidURL as exc:
                raise _Permanent(f"不是有效的链接 (not a valid URL: {exc})") from exc
            location = _redirect_location(response)
            if location is None:
                return response, urls
            response.release()
            url = _next_hop(url, location)
            urls.append(url)
        raise _Permanent(
            f"重定向次数过多: 超过{self.settings.offline_max_redirects}次 (too many redirects)"
        )

    async def _fetch_once(self, session: GuardedSession, head: bytearray) -> _Fetched:
        assert self.sink is not None
        sink = self.sink
        offset = sink.written
        response, urls = await self._open(session, offset)
        try:
            total = self._check_answer(response, offset)
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            if encoded and offset:
                raise _Restart()  # offsets into a compressed body are not offsets of the file
            if response.status == 200 and offset:
                # The whole resource again (no ranges, or it changed): start over with it.
                await self._restart()
                sink, offset, head = self.sink, 0, bytearray()
            self._learn(response, urls, total)
            cap = self._cap()
            if cap is not None and total is not None and total > cap:
                raise _Permanent(_too_large(total, cap, self.task.space))
            sniffed: str | None = None
            checked = self.task.space != SPACE_OSS
            if not checked and len(head) >= SNIFF_BYTES:
                sniffed, checked = self._sniff(bytes(head)), True
            batch: list[bytes] = []
            batched = 0
            received = offset
            interval = self.settings.offline_progress_interval
            next_progress = time.monotonic() + interval
            try:
                # Each piece as the parser produced it (a compressed body already decoded):
                # no joining, no copy.
                async for chunk, _ in response.content.iter_chunks():
                    if not chunk:
                        continue  # the end of a chunk of a chunked body
                    received += len(chunk)
                    if cap is not None and received > cap:
                        raise _Permanent(_too_large(received, cap, self.task.space))
                    if not checked:
                        head += chunk[: SNIFF_BYTES - len(head)]
                        if len(head) >= SNIFF_BYTES:
                            sniffed, checked = self._sniff(bytes(head)), True
                    batch.append(chunk)
                    batched += len(chunk)
                    now = time.monotonic()
                    if batched >= (BIG_BATCH if received > 4 * BIG_BATCH else BATCH) or (
                        now >= next_progress
                    ):
                        durable = now >= next_progress
                        await sink.write(batch, batched, durable)
                        batch, batched = [], 0
                        if durable:
                            next_progress = now + interval
                        self._report(total)
            except aiohttp.ClientPayloadError as exc:  # the body was cut off
                if batch:
                    await sink.write(batch, batched)
                # Bytes that arrived with the end of the connection are dropped unread (aiohttp
                # raises first); the origin sent them all the same.
                sent = max(received, offset + response.content.total_bytes)
                if total is not None and sent < total:
                    raise _Transient(_short(sent, total)) from exc
                raise
            if batch:
                await sink.write(batch, batched)
            await sink.drain()
        finally:
            # Back to the pool when the body was read to its end; closed otherwise.
            response.release()
        if total is not None and received != total:
            raise _Transient(_short(received, total))
        if not checked:
            sniffed = self._sniff(bytes(head))
        return _Fetched(md5=sink.hasher.hexdigest(), size=received, sniffed=sniffed)

    def _check_answer(self, response: aiohttp.ClientResponse, offset: int) -> int | None:
        """The size of the whole resource if known; raises for answers that carry no bytes."""
        code = response.status
        if code == 206 and offset:
            start, total = _content_range(response.headers.get("content-range", ""))
            if start != offset:
                raise _Restart()
            if (
                self.task.bytes_total is not None
                and total is not None
                and total != self.task.bytes_total
            ):
                raise _Restart()
            validator = _validator(response)
            if self.task.validator and validator and validator != self.task.validator:
                raise _Restart()
            return total
        if code == 416 and offset:
            raise _Restart()
        if code == 200 or (code == 206 and not offset):
            if code == 206:
                return _content_range(response.headers.get("content-range", ""))[1]
            length = response.headers.get("content-length", "")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            return int(length) if length.isdigit() and not encoded else None
        if code in _TRANSIENT_HTTP or 500 <= code < 600:
            raise _Transient(
                f"源站暂时不可用: HTTP {code} (the origin answered {code} {response.reason or ''})",
                _retry_after(response),
            )
        raise _Permanent(
            f"源站返回 HTTP {code} (the origin answered {code} {response.reason or ''})"
        )

    def _learn(self, response: aiohttp.ClientResponse, urls: list[URL], total: int | None) -> None:
        """Note what an answer tells: the suggested name, the validator, the size."""
        task = self.task
        if task.origin_name is None:
            self._learnt(origin_name=name_from_response(response, urls) or "")
        validator = _validator(response)
        if validator != task.validator and response.status == 200:
            self._learnt(validator=validator)
        if total != task.bytes_total:
            self._learnt(bytes_total=total)

    def _sniff(self, head: bytes) -> str:
        kind = sniff_image(head)
        if kind is None:
            raise _Permanent(
                f"下载的内容不是图片 (the downloaded bytes are not an image: {_describe(head)})"
            )
        return kind

    # Committing ------------------------------------------------------------------------------

    async def _commit(self, fetched: _Fetched) -> None:
        """Make the downloaded bytes a blob, then the file; end the task.

        Where storing is a rename (``put_moves``), the bytes are stored before anything is
        looked up: when identical ones are stored already, registering finds them in the same
        transaction and this copy is deleted, a rename in the rare repeated download and a query
        saved in every other one. Where storing is an upload, identical bytes are looked for
        first and then not sent at all."""
        task = self.task
        assert self.sink is not None
        path = Path(self.sink.path)
        await self._settle()
        user = self.user
        if user is None:
            raise _Permanent("用户不存在 (the user is gone)")
        have_blob = False
        if not self.ctx.store.put_moves:
            async with self.ctx.db.rows() as connection:
                have_blob = await blobs.find(connection, fetched.md5, fetched.size) is not None
        key: str | None = None
        for _ in range(2):
            if not have_blob and key is None:
                # A key of this run's own: a second run of the task (a job re-run while the
                # first still ran) must never delete the blob the first one registered. From
                # ``random``: the tag tells the copies apart and guards nothing.
                tag = f"off{task.id}-{random.getrandbits(32):08x}"
                key = blobs.new_key(fetched.md5, fetched.size, tag=tag)
                await self.ctx.store.put_file(key, path)
            try:
                file_id, keep_key = await self._make_file(user, fetched, key)
                break
            except _BlobGone:
                have_blob = False
            except _AlreadyEnded:
                if key is not None:
                    await self._drop_copy(key)
                return
            except BaseException:
                if key is not None:
                    await self._drop_copy(key)
                raise
        else:
            raise _Transient("存储失败 (storage error)")
        if key is not None and not keep_key:
            await self._drop_copy(key)
        self._notify_ended()
        log.info("offline task %s done: file %s", task.id, file_id)

    async def _drop_copy(self, key: str) -> None:
        """Delete this run's copy of the bytes, which no file uses. Failing to is only space
        lost (logged): it must not turn a task that ended into one that is retried."""
        try:
            await self.ctx.store.delete(key)
        except Exception:
            log.exception("offline task %s: could not delete unused blob %s", self.task.id, key)

    async def _make_file(self, user: User, fetched: _Fetched, key: str | None) -> tuple[int, bool]:
        """In one transaction: the blob reference, the file row, the task's end. Returns the file
        ID and whether the blob stored under ``key`` is now in use."""
        task = self.task
        space = task.space
        async with self.ctx.db.write() as session:
            if space == SPACE_DISK:
                await disk.check_space_locked(session, self.ctx, user, fetched.size)
            parent_id = await self._commit_target(session, user)
            now = utcnow()
            name = _final_name(task, fetched.sniffed)
            same = None
            if space == SPACE_OSS:
                # The image bed's rule: the same image (etag and size) in the directory is
                # replaced in place, keeping its fileId, rather than stored twice.
                same = await session.scalar(
                    select(File)
                    .where(
                        File.user_id == user.id,
                        File.space == SPACE_OSS,
                        File.parent_id == parent_id,
                        File.is_dir.is_(False),
                        File.etag == fetched.md5,
                        File.size == fetched.size,
                    )
                    .limit(1)
                )
            stored = False
            if same is not None:
                if await tree.name_holder(session, user.id, space, parent_id, name) is None:
                    same.name = name
                    same.ext = extension(name)
                same.updated_at = now
                await session.flush()
                file_id = same.id
            else:
                if key is None:
                    blob = await blobs.acquire(session, fetched.md5, fetched.size)
                    if blob is None:
                        raise _BlobGone()
                else:
                    blob, stored = await blobs.register(session, fetched.md5, fetched.size, key)
                row = tree.new_entry(
                    user.id,
                    space,
                    parent_id,
                    name,
                    blob_id=blob.id,
                    size=fetched.size,
                    etag=fetched.md5,
                    now=now,
                )
                insert_if_free = _INSERT_FILE_IF_FREE[dialect_name(session)]
                file_id = await session.scalar(insert_if_free, row)
                if file_id is None:  # the name is taken: the first free "name(n).ext"
                    row["name"] = await tree.free_name(
                        session, user.id, space, parent_id, name, "fileName"
                    )
                    # Taken meanwhile by another process (PostgreSQL): the transaction fails
                    # and the task is retried.
                    file_id = await session.scalar(_INSERT_FILE, row)
            if not await self._finish(session, SUCCEEDED, file_id=file_id, size=fetched.size):
                # Ended meanwhile (this job ran twice): undo the file, keep the task as it is.
                raise _AlreadyEnded()
        return file_id, stored

    async def _commit_target(self, session: Session, user: User) -> int:
        """The directory the file goes into, now: the one asked for (if it still exists) or the
        default directory, made on first use."""
        task = self.task
        if task.target_parent_id != tree.ROOT:
            entry = await tree.get(session, user.id, task.space, task.target_parent_id)
            gone = entry is None or not entry.is_dir
            if not gone and task.space == SPACE_DISK:
                assert entry is not None
                gone = await disk.in_trash(session, user, entry)
            if gone:
                raise _Permanent("目标目录已被删除 (the target directory no longer exists)")
            return task.target_parent_id
        return await default_dir(session, user.id, task.space)


T = TypeVar("T")


class _DownloadLoop:
    """A second event loop, on a thread of its own, where downloads receive their bytes.

    Receiving is the busiest part of a download. On the server's loop it would make every
    database round trip wait its turn behind network reads, and SQLite's one writer holds the
    write lock through those waits; here, requests and transactions keep the server's loop to
    themselves. Writing and hashing happen in worker threads either way (both release the GIL).
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _guard = threading.Lock()
    # Used on the loop's own thread only. One session per allowlist and timeout (in practice
    # one): every download shares its connection pool, DNS cache and TLS context.
    _sessions: ClassVar[dict[tuple[str, float], GuardedSession]] = {}

    @classmethod
    def _get(cls) -> asyncio.AbstractEventLoop:
        with cls._guard:
            if cls._loop is None:
                loop = _new_loop()
                threading.Thread(target=loop.run_forever, name="downloads", daemon=True).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    async def run(cls, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` there; cancelling the caller cancels it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, cls._get()))

    @classmethod
    def session(cls, settings: Settings) -> GuardedSession:
        """The guarded session downloads use, made on first use (call it on the loop)."""
        key = (settings.fetch_allow, settings.offline_timeout)
        session = cls._sessions.get(key)
        if session is None:
            session = cls._sessions[key] = GuardedSession(*key, read_bufsize=READ_BUFFER)
        return session

    @classmethod
    async def close(cls) -> None:
        """Close the sessions and their pooled connections; later downloads make new ones."""
        if cls._loop is None:
            return

        async def close_all() -> None:
            sessions, cls._sessions = list(cls._sessions.values()), {}
            for session in sessions:
                await session.close()

        await cls.run(close_all())


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # installed with uvicorn[standard]; the server's own loop is one too
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _BlobGone(Exception):
    """The stored blob with these bytes was deleted between looking and taking it."""


class _AlreadyEnded(Exception):
    """The task ended while this run was committing (a job run twice)."""


async def default_dir(session: Session, user_id: int, space: str) -> int:
    """The ``来自:离线下载`` directory in the root of a space, made on first use."""
    existing = await tree.name_holder(session, user_id, space, tree.ROOT, DEFAULT_DIR)
    if existing is not None and existing[1]:
        return existing[0]
    name = DEFAULT_DIR if existing is None else f"{DEFAULT_DIR}(1)"
    entry = File(**tree.new_entry(user_id, space, tree.ROOT, name))
    try:
        async with session.begin_nested():
            session.add(entry)
    except IntegrityError:
        # Made by a concurrent transaction (PostgreSQL) a moment ago: use that one.
        again = await tree.name_holder(session, user_id, space, tree.ROOT, DEFAULT_DIR)
        if again is None:
            raise
        return again[0]
    return entry.id


# Small helpers ----------------------------------------------------------------------------------


def _content_range(value: str) -> tuple[int | None, int | None]:
    """(first byte, whole size) of ``bytes a-b/size``; ``None`` for what is missing."""
    unit, _, spec = value.strip().partition(" ")
    if unit.lower() != "bytes":
        return None, None
    span, _, size = spec.partition("/")
    start_text = span.partition("-")[0].strip()
    start = int(start_text) if start_text.isdigit() else None
    total = int(size) if size.strip().isdigit() else None
    return start, total


def _validator(response: aiohttp.ClientResponse) -> str | None:
    """A validator for If-Range: a strong ETag, else Last-Modified."""
    etag = response.headers.get("etag", "").strip()
    if etag and not etag.startswith("W/"):
        return etag[:255]
    modified = response.headers.get("last-modified", "").strip()
    return modified[:255] or None


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(min(int(value), int(MAX_BACKOFF))) if value.isdigit() else None


def _transport_reason(exc: Exception) -> str:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors
        return f"连接源站超时 (timed out: {detail})"
    return f"连接源站失败 (connection failed: {detail})"


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _redirect_location(response: aiohttp.ClientResponse) -> str | None:
    """Where a redirect points (as written), or ``None`` for any other answer."""
    if response.status not in _REDIRECTS:
        return None
    return response.headers.get("location")


def _url(text: str, base: URL | None = None) -> URL:
    """``text`` as a URL, relative to ``base`` if given; ``ValueError`` if it is none."""
    return URL(text) if base is None else base.join(URL(text))


def _next_hop(url: URL, location: str) -> URL:
    """Where a redirect from ``url`` to ``location`` leads, if a download may go there."""
    try:
        target = _url(location, base=url)
    except ValueError as exc:
        raise _Permanent(f"源站重定向地址无效 (invalid redirect: {exc})") from exc
    if target.scheme not in ("http", "https"):
        raise _Permanent(
            f"源站重定向到了不支持的协议: {target.scheme} (redirected to a non-http(s) URL)"
        )
    return target


def _short(received: int, total: int) -> str:
    return (
        f"源站发送的数据少于Content-Length: 收到{received}字节, 声明{total}字节 "
        f"(the origin sent {received} of the {total} bytes its Content-Length announced)"
    )


def _too_large(size: int, cap: int, space: str) -> str:
    where = "图床单个图片" if space == SPACE_OSS else "离线下载单个文件"
    return f"文件过大: {size}字节, {where}最大{cap}字节 (too large: at most {cap} bytes)"


def _describe(head: bytes) -> str:
    start = head.lstrip()[:64].lower()
    if start.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:512].lower():
        return "looks like an HTML page"
    if not head:
        return "empty"
    return "unknown format"
