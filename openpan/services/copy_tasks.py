"""Copy tasks: cloud-disk images into an image-bed directory (``/api/v1/oss/source/copy``).

No bytes move: each new image-bed file refers to the blob its cloud-disk file uses. A task
walks the files and directories it was given (15 levels deep at most), keeps the images (image
extensions, 100 MB at most each, 1000 per task at most) and adds them to the target directory
in batches, one short write transaction each. An image whose etag and size are already in the
target directory replaces that file in place, which also makes a task safe to run again: after
a restart, the persisted job starts the task over and nothing is copied twice.

A user has at most three unfinished tasks. One runs (status 1) while the others wait (status
4); the transaction that ends a task starts the job of the next, so the queue survives
restarts without polling.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from openpan import ids
from openpan.clock import utcnow
from openpan.db.models import SPACE_DISK, SPACE_OSS, CopyFailure, CopyTask, File, User
from openpan.db.session import Session
from openpan.db.statuses import CopyStatus
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.jobs.runner import enqueue
from openpan.services import blobs, disk, oss, tree
from openpan.services.context import Context
from openpan.services.names import IMAGE_EXTENSIONS, check_image_name, extension

log = logging.getLogger("openpan.copy")

JOB = "copy.run"
MAX_TASKS = 3
MAX_IMAGES = 1000
MAX_DEPTH = 15
MAX_SOURCES = 100

UNFINISHED = (CopyStatus.RUNNING, CopyStatus.WAITING)


@dataclass
class Image:
    """A cloud-disk file to copy."""

    file_id: int
    name: str


@dataclass
class Plan:
    images: list[Image]
    failures: list[CopyFailure]


async def create(ctx: Context, user: User, file_ids: list[int], target_oss_id: str) -> CopyTask:
    """Queue a copy task; it runs at once unless another of the user's tasks is running."""
    if not file_ids:
        raise FieldError("fileIDs", "不能为空 (must not be empty)")
    if len(file_ids) > MAX_SOURCES:
        raise FieldError("fileIDs", f"最多{MAX_SOURCES}个 (at most {MAX_SOURCES} items)")
    async with ctx.db.write() as session:
        # Locks the user's row on PostgreSQL: creating and finishing tasks take turns.
        await session.scalar(select(User.id).where(User.id == user.id).with_for_update())
        target = await oss.resolve_dir(session, user, "toParentFileID", target_oss_id)
        sources = list(dict.fromkeys(file_ids))
        found = set(
            (
                await session.scalars(
                    select(File.id).where(
                        File.id.in_(sources),
                        File.user_id == user.id,
                        File.space == SPACE_DISK,
                        File.trashed.is_(False),
                    )
                )
            ).all()
        )
        missing = [str(i) for i in sources if i not in found]
        if missing:
            raise NotFound(f"fileIDs 文件不存在 (no such file: {', '.join(missing[:5])})")
        unfinished = int(
            await session.scalar(
                select(func.count(CopyTask.id)).where(
                    CopyTask.user_id == user.id, CopyTask.status.in_(UNFINISHED)
                )
            )
            or 0
        )
        if unfinished >= MAX_TASKS:
            raise OpenpanError(
                f"复制任务数量已达上限: 最多{MAX_TASKS}个未完成的任务, 请等待任务完成后再创建 "
                f"(at most {MAX_TASKS} unfinished copy tasks)"
            )
        now = utcnow()
        task = CopyTask(
            id=ids.sortable_id(),
            user_id=user.id,
            target_parent_id=target.id if target else tree.ROOT,
            source_ids=json.dumps(sources),
            status=CopyStatus.WAITING,
            fail_msg="",
            created_at=now,
            updated_at=now,
        )
        session.add(task)
        if unfinished == 0:
            await enqueue(session, JOB, {"task_id": task.id})
    ctx.jobs.notify(JOB)
    return task


async def status(ctx: Context, user: User, task_id: str) -> CopyTask:
    """A task of this user (``/copy/process``)."""
    async with ctx.db.read() as session:
        task = await session.get(CopyTask, task_id)
    if task is None or task.user_id != user.id:
        raise NotFound(f"taskID 复制任务不存在 (no such task: {task_id})")
    return task


async def failures(
    ctx: Context, user: User, task_id: str, page: int, limit: int
) -> tuple[int, list[CopyFailure]]:
    """One page of the files a task could not copy, with the reason (``/copy/fail``)."""
    await status(ctx, user, task_id)
    async with ctx.db.read() as session:
        total = int(
            await session.scalar(
                select(func.count(CopyFailure.id)).where(CopyFailure.task_id == task_id)
            )
            or 0
        )
        rows = (
            await session.scalars(
                select(CopyFailure)
                .where(CopyFailure.task_id == task_id)
                .order_by(CopyFailure.id)
                .offset((page - 1) * limit)
                .limit(limit)
            )
        ).all()
    return total, list(rows)


# Running a task -------------------------------------------------------------------------------


async def run_job(ctx: Context, payload: dict[str, object]) -> None:
    """The job: run the task, then start the user's next waiting one."""
    task_id = str(payload["task_id"])
    async with ctx.db.write() as session:
        task = await session.get(CopyTask, task_id)
        if task is None or CopyStatus(task.status).finished:
            return
        # From the start each time: a run cut off by a restart left nothing it would not redo.
        task.status = CopyStatus.RUNNING
        task.updated_at = utcnow()
        await session.execute(delete(CopyFailure).where(CopyFailure.task_id == task_id))
    outcome, message = CopyStatus.DONE, ""
    try:
        await _copy(ctx, task)
    except OpenpanError as exc:
        outcome, message = CopyStatus.FAILED, exc.message
    except Exception:
        log.exception("copy task %s failed", task_id)
        outcome, message = CopyStatus.FAILED, "复制失败: 服务内部错误 (internal error)"
    async with ctx.db.write() as session:
        await session.scalar(select(User.id).where(User.id == task.user_id).with_for_update())
        current = await session.get(CopyTask, task_id)
        if current is not None:
            current.status = outcome
            current.fail_msg = message
            current.updated_at = utcnow()
        following = await session.scalar(
            select(CopyTask.id)
            .where(CopyTask.user_id == task.user_id, CopyTask.status == CopyStatus.WAITING)
            .order_by(CopyTask.id)
            .limit(1)
        )
        if following is not None:
            await enqueue(session, JOB, {"task_id": following})
    ctx.jobs.notify(JOB)


async def _copy(ctx: Context, task: CopyTask) -> None:
    async with ctx.db.read() as session:
        user = await session.get(User, task.user_id)
        if user is None:
            raise OpenpanError("用户不存在 (the user is gone)")
        await _target(session, user, task.target_parent_id)
        plan = await _plan(ctx, session, user, task, json.loads(task.source_ids))
    if len(plan.images) > MAX_IMAGES:
        raise OpenpanError(
            f"图片数量超过限制: 每个任务最多{MAX_IMAGES}张, 本任务有{len(plan.images)}张 "
            f"(at most {MAX_IMAGES} images per task)"
        )
    if plan.failures:
        async with ctx.db.write() as session:
            session.add_all(plan.failures)
    size = ctx.settings.copy_batch_size
    for start in range(0, len(plan.images), size):
        if start and ctx.settings.copy_batch_pause:
            await asyncio.sleep(ctx.settings.copy_batch_pause)
        async with ctx.db.write() as session:
            target = await _target(session, user, task.target_parent_id)
            for image in plan.images[start : start + size]:
                reason = await _copy_one(session, user, image, target)
                if reason:
                    session.add(_failure(task, image.file_id, image.name, reason))


async def _target(session: Session, user: User, target_id: int) -> int:
    if target_id == tree.ROOT:
        return tree.ROOT
    entry = await tree.get(session, user.id, SPACE_OSS, target_id)
    if entry is None or not entry.is_dir:
        raise OpenpanError("toParentFileID 图床目标目录已被删除 (the target directory is gone)")
    return entry.id


def _failure(task: CopyTask, file_id: int, name: str, reason: str) -> CopyFailure:
    return CopyFailure(task_id=task.id, file_id=file_id, filename=name, reason=reason)


async def _plan(
    ctx: Context, session: Session, user: User, task: CopyTask, sources: list[int]
) -> Plan:
    """The images a task copies, and what it refuses with a reason, in the order given."""
    images: list[Image] = []
    failed: list[CopyFailure] = []
    limit = ctx.settings.oss_max_file_size
    shown = f"{limit // 1_000_000}M" if limit % 1_000_000 == 0 else f"{limit}字节"
    too_big = f"图片大小超过{shown} (image larger than the image bed's limit of {limit} bytes)"

    def consider(entry: File, named: bool) -> None:
        if extension(entry.name) not in IMAGE_EXTENSIONS:
            if named:  # only a file the user pointed at is worth a word; others are skipped
                failed.append(_failure(task, entry.id, entry.name, "不是图片格式 (not an image)"))
            return
        if entry.size > limit:
            failed.append(_failure(task, entry.id, entry.name, too_big))
            return
        images.append(Image(file_id=entry.id, name=entry.name))

    for source_id in sources:
        entry = await disk.get(session, user, source_id)
        if entry is None or await disk.in_trash(session, user, entry):
            failed.append(_failure(task, source_id, "", "文件不存在 (no such file)"))
        elif entry.is_dir:
            await _walk(
                session, user, task, entry, consider, failed, lambda: len(images) > MAX_IMAGES
            )
        else:
            consider(entry, named=True)
        if len(images) > MAX_IMAGES:
            break  # the task fails anyway; no need to walk the rest
    return Plan(images=images, failures=failed)


async def _walk(
    session: Session,
    user: User,
    task: CopyTask,
    root: File,
    consider: Callable[[File, bool], None],
    failed: list[CopyFailure],
    enough: Callable[[], bool],
) -> None:
    """Images in a directory and below it, breadth first, ``MAX_DEPTH`` levels at most."""
    level, frontier = 1, [root.id]
    while frontier and not enough():
        children = (
            await session.scalars(
                select(File)
                .where(
                    File.user_id == user.id,
                    File.space == SPACE_DISK,
                    File.parent_id.in_(frontier),
                    File.trashed.is_(False),
                )
                .order_by(File.id)
            )
        ).all()
        frontier = []
        for child in children:
            if not child.is_dir:
                consider(child, False)
            elif level < MAX_DEPTH:
                frontier.append(child.id)
            else:
                failed.append(
                    _failure(
                        task,
                        child.id,
                        child.name,
                        f"文件夹层级超过{MAX_DEPTH}层, 未复制 (deeper than {MAX_DEPTH} levels)",
                    )
                )
        level += 1


async def _copy_one(session: Session, user: User, image: Image, target: int) -> str:
    """Add one image to the target directory; returns why it could not be, or ``""``."""
    source = await disk.get(session, user, image.file_id)
    if source is None or source.blob_id is None:
        return "源文件已被删除 (the cloud-disk file was deleted)"
    same = await tree.same_image(session, user.id, target, source.etag, source.size)
    if same is not None:
        same.updated_at = utcnow()  # the same image: replaced in place, same fileId
        return ""
    try:
        check_image_name("filename", source.name)
    except FieldError as exc:
        return exc.message
    name = await tree.free_name(session, user.id, SPACE_OSS, target, source.name)
    await blobs.acquire_by_id(session, source.blob_id)
    blob_id, size, etag = source.blob_id, source.size, source.etag  # the copy shares the bytes
    entry = tree.new_entry(user.id, SPACE_OSS, target, name, blob_id=blob_id, size=size, etag=etag)
    session.add(File(**entry))
    await session.flush()
    return ""
