"""Turning a finished transfer into a file: the bytes become a blob (no copy if identical bytes
are stored already), then a file row, in that order, so a crash never shows a file whose bytes
are missing. The file row and the task's end are one transaction."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from openpan.clock import utcnow
from openpan.db.engine import dialect_name
from openpan.db.models import SPACE_DISK, SPACE_OSS, OfflineTask, User
from openpan.db.session import Session
from openpan.services import blobs, disk, tree, variant_store
from openpan.services.context import Context
from openpan.services.names import extension
from openpan.services.offline.failures import AlreadyEnded, BlobGone, Permanent, Transient
from openpan.services.offline.fetch import Fetched
from openpan.services.offline.names import final_name
from openpan.services.offline.statements import INSERT_FILE, INSERT_FILE_IF_FREE
from openpan.services.offline.tasks import default_dir

log = logging.getLogger("openpan.offline")

# Ends the task as succeeded in the given transaction, with its file and size; False if it had
# ended already.
Finish = Callable[[Session, int, int], Awaitable[bool]]


async def commit(
    ctx: Context, task: OfflineTask, user: User, fetched: Fetched, path: Path, finish: Finish
) -> int | None:
    """Store the bytes at ``path``, make the file and end the task (``finish``); the file's ID,
    or ``None`` if the task had ended meanwhile (nothing is left behind then).

    Where storing is a rename (``put_moves``), the bytes are stored before anything is looked
    up: when identical ones are stored already, registering finds them in the same transaction
    and this copy is deleted, a rename in the rare repeated download and a query saved in every
    other one. Where storing is an upload, identical bytes are looked for first and then not
    sent at all."""
    have_blob = False
    if not ctx.store.put_moves:
        async with ctx.db.rows() as connection:
            have_blob = await blobs.find(connection, fetched.md5, fetched.size) is not None
    key: str | None = None
    for _ in range(2):
        if not have_blob and key is None:
            # A key of this run's own: a second run of the task (a job re-run while the first
            # still ran) must never delete the blob the first one registered. From ``random``:
            # the tag tells the copies apart and guards nothing.
            tag = f"off{task.id}-{random.getrandbits(32):08x}"
            key = blobs.new_key(fetched.md5, fetched.size, tag=tag)
            await ctx.store.put_file(key, path)
        try:
            file_id, keep_key = await _make_file(ctx, task, user, fetched, key, finish)
            break
        except BlobGone:
            have_blob = False
        except AlreadyEnded:
            if key is not None:
                await _drop_copy(ctx, task, key)
            return None
        except BaseException:
            if key is not None:
                await _drop_copy(ctx, task, key)
            raise
    else:
        raise Transient("存储失败 (storage error)")
    if key is not None and not keep_key:
        await _drop_copy(ctx, task, key)
    elif key is not None and task.space == SPACE_OSS:
        await variant_store.remember_image(ctx, key)
    return file_id


async def _drop_copy(ctx: Context, task: OfflineTask, key: str) -> None:
    """Delete this run's copy of the bytes, which no file uses. Failing to is only space lost
    (logged): it must not turn a task that ended into one that is retried."""
    try:
        await ctx.store.delete(key)
    except Exception:
        log.exception("offline task %s: could not delete unused blob %s", task.id, key)


async def _make_file(
    ctx: Context,
    task: OfflineTask,
    user: User,
    fetched: Fetched,
    key: str | None,
    finish: Finish,
) -> tuple[int, bool]:
    """In one transaction: the blob reference, the file row, the task's end. Returns the file
    ID and whether the blob stored under ``key`` is now in use."""
    space = task.space
    async with ctx.db.write() as session:
        if space == SPACE_DISK:
            await disk.check_space_locked(session, ctx, user, fetched.size)
        parent_id = await _target(session, task, user)
        now = utcnow()
        name = final_name(task, fetched.sniffed)
        same = None
        if space == SPACE_OSS:
            same = await tree.same_image(session, user.id, parent_id, fetched.md5, fetched.size)
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
                    raise BlobGone()
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
            file_id = await session.scalar(INSERT_FILE_IF_FREE[dialect_name(session)], row)
            if file_id is None:  # the name is taken: the first free "name(n).ext"
                row["name"] = await tree.free_name(
                    session, user.id, space, parent_id, name, "fileName"
                )
                # Taken meanwhile by another process (PostgreSQL): the transaction fails and the
                # task is retried.
                file_id = await session.scalar(INSERT_FILE, row)
        if not await finish(session, file_id, fetched.size):
            # Ended meanwhile (this job ran twice): undo the file, keep the task as it is.
            raise AlreadyEnded()
    return file_id, stored


async def _target(session: Session, task: OfflineTask, user: User) -> int:
    """The directory the file goes into, now: the one asked for (if it still exists) or the
    default directory, made on first use."""
    if task.target_parent_id != tree.ROOT:
        entry = await tree.get(session, user.id, task.space, task.target_parent_id)
        gone = entry is None or not entry.is_dir
        if not gone and task.space == SPACE_DISK:
            assert entry is not None
            gone = await disk.in_trash(session, user, entry)
        if gone:
            raise Permanent("目标目录已被删除 (the target directory no longer exists)")
        return task.target_parent_id
    return await default_dir(session, user.id, task.space)
