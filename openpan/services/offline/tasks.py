"""Creating and reading offline tasks, and handing out download slots.

Creating a task checks everything that can be checked at once (URL, name, target directory),
so bad input is an error now rather than a task failing later.

Slots: at most ``offline_max_active`` tasks download at once, and at most
``offline_max_active_per_user`` of one user; a task holds a slot (``active``) from the moment
its job is queued until it ends, and the transaction that ends a task hands the freed slot to
the oldest waiting task (``admit``). So tasks beyond the limits queue in the database, not in
memory, and nothing polls for a slot.
"""

from __future__ import annotations

import unicodedata

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from openpan.clock import utcnow
from openpan.db.engine import serialize
from openpan.db.models import SPACE_OSS, File, OfflineTask, User, from_row
from openpan.db.session import Session
from openpan.db.statuses import OfflineStatus
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.jobs.runner import enqueue
from openpan.services import callbacks, disk, oss, tree
from openpan.services.context import Context
from openpan.services.emulation import Emulation
from openpan.services.fetch_guard import allowlist_from, check_literal
from openpan.services.names import check_image_name, check_name
from openpan.services.offline.fetch import parse_url
from openpan.services.offline.statements import (
    ADMIT_ONE,
    INSERT_TASK,
    TASK,
    limits,
    tasks,
    unfinished,
)
from openpan.settings import Settings

DOWNLOAD_JOB = "offline.download"
DEFAULT_DIR = "来自:离线下载"
MAX_URL = 4096


def check_url(field_name: str, url: str, settings: Settings, *, simulated: bool = False) -> str:
    """An http(s) URL a download may fetch, or a ``FieldError`` saying why not. A
    ``simulated`` one (an emulator's remote file) is read from memory: no address to judge."""
    text = url.strip()
    if not text:
        raise FieldError(field_name, "不能为空 (required)")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise FieldError(field_name, "不能包含空白或控制字符 (no spaces or control characters)")
    try:
        # What the download will parse it with, so it fails now rather than then; the host is
        # decoded here, so a malformed IDNA name fails too (UnicodeError is a ValueError).
        parsed = parse_url(text)
        host = parsed.host
    except ValueError as exc:
        raise FieldError(field_name, f"不是有效的链接 (not a valid URL: {exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise FieldError(field_name, "只支持http/https链接 (only http and https URLs)")
    if not host:
        raise FieldError(field_name, "缺少主机名 (the URL has no host)")
    refused = None if simulated else check_literal(host, allowlist_from(settings.fetch_allow))
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
    simulated = ctx.settings.emulator and url.strip() in ctx.part(Emulation).remotes
    url = check_url("url", url, ctx.settings, simulated=simulated)
    if callback_url is not None:
        callback_url = check_url("callBackUrl", callback_url, ctx.settings)
    if file_name is not None:
        file_name = _check_file_name(space, file_name)
    limit = ctx.settings.offline_max_unfinished_per_user
    async with ctx.db.write() as session:
        parent_id = await _creation_target(session, user, space, target)
        if limit:
            count = await session.scalar(
                select(func.count(tasks.c.id)).where(tasks.c.user_id == user.id, unfinished)
            )
            if (count or 0) >= limit:
                raise OpenpanError(
                    f"离线下载任务过多, 请等待已有任务完成 (too many unfinished offline tasks: "
                    f"at most {limit} at once)"
                )
        # One admission at a time across processes, or two would hand out the same slot.
        await serialize(session, "offline.admit")
        now = utcnow()
        task_id, admitted = (
            await session.execute(
                INSERT_TASK,
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
                    **limits(ctx.settings),
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
        row = (await connection.execute(TASK, {"id": task_id})).first()
    if row is None or row.user_id != user.id or row.space != space:
        raise NotFound(f"taskID 离线下载任务不存在 (no such task: {task_id})")
    return from_row(OfflineTask, row)


async def made_file_id(ctx: Context, task: OfflineTask) -> int | str:
    """The ID of the file a succeeded task made, as its space's clients know it (the
    callback's ``fileID``); 0 or ``""`` for any other task or a file deleted since."""
    file = None
    if task.status == OfflineStatus.SUCCEEDED and task.file_id is not None:
        async with ctx.db.read() as session:
            file = await session.scalar(
                select(File).where(File.id == task.file_id, File.user_id == task.user_id)
            )
    return callbacks.made_file_id(task, file)


async def admit(session: Session, settings: Settings, at_most: int | None = None) -> int:
    """Give free download slots to waiting tasks, oldest first, each user within their limit,
    and queue their jobs (in the caller's transaction); ``at_most`` that many. Returns how many
    were admitted."""
    # One admission at a time across processes, or two would hand out the same free slot (or
    # the same waiting task) at once.
    await serialize(session, "offline.admit")
    values = limits(settings)
    admitted = 0
    while at_most is None or admitted < at_most:
        task_id = await session.scalar(ADMIT_ONE, values)
        if task_id is None:
            break
        await enqueue(session, DOWNLOAD_JOB, {"task_id": task_id})
        admitted += 1
    return admitted


async def admit_waiting(ctx: Context) -> None:
    """Start waiting tasks that fit the limits now (at start-up: the limits may have grown)."""
    async with ctx.db.write() as session:
        admitted = await admit(session, ctx.settings)
    if admitted:
        ctx.jobs.notify(DOWNLOAD_JOB)


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
