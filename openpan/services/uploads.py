"""Chunked, deduplicating uploads: create → slices → complete (sync or async) → file.

The flow is the same for the image bed and the cloud disk; the space decides names, limits and
what happens on a name clash. Slices go to the blob store as they arrive; ``finish`` hashes the
whole, compares it with the declared md5, makes the bytes a blob (or drops them if an identical
blob exists) and only then commits the row that makes the file visible.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete as sql_delete
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from openpan import ids
from openpan.clock import epoch, utcnow
from openpan.db.models import SPACE_DISK, SPACE_OSS, File, Job, UploadSession, User
from openpan.db.session import Session
from openpan.db.statuses import JobStatus, UploadStatus
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.jobs.runner import enqueue
from openpan.services import blobs, disk, links, tree, variant_store
from openpan.services.context import Context
from openpan.storage import PartInfo, PartSizeError, StorageError

log = logging.getLogger("openpan.uploads")

FINISH_JOB = "upload.finish"
# Seconds before the job behind a synchronous completion runs (a no-op unless the request died).
FINISH_BACKUP_DELAY = 60.0
# How long past its deadline a session still being verified is left to its job.
VERIFYING_GRACE = timedelta(hours=1)
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")

# What to do when the name is taken at completion (cloud disk ``duplicate``).
DUPLICATE_ERROR = 0
DUPLICATE_KEEP_BOTH = 1
DUPLICATE_OVERWRITE = 2


@dataclass
class Created:
    """The answer to create: an instant upload (``file``) or an upload to send slices to."""

    file: File | None
    upload: UploadSession | None
    slice_size: int


@dataclass
class Completion:
    completed: bool
    is_async: bool
    file: File | None


def check_etag(etag: str) -> str:
    if not _MD5.fullmatch(etag):
        raise FieldError("etag", "必须是32位十六进制的md5 (must be a 32-character hex md5)")
    return etag.lower()


def part_count(size: int, slice_size: int) -> int:
    return max(1, -(-size // slice_size))


def part_span(session: UploadSession, number: int) -> tuple[int, int]:
    """(offset, size) of slice ``number``: every slice is ``slice_size`` but the last."""
    offset = (number - 1) * session.slice_size
    return offset, min(session.slice_size, session.size - offset)


async def _may_reuse(ctx: Context, session: Session, user: User, etag: str, size: int) -> bool:
    """Whether known bytes may make the file at once (instant upload, 秒传). On the real
    service, and by default, any user's bytes do — which tells a user that someone holds a
    file of that md5 and size. ``OPENPAN_INSTANT_UPLOAD=own`` limits it to the user's own
    files, for hosts whose users do not trust each other; others then send the bytes (stored
    once all the same)."""
    if ctx.settings.instant_upload == "all":
        return True
    owned = await session.scalar(
        select(File.id)
        .where(
            File.user_id == user.id,
            File.etag == etag,
            File.size == size,
            File.blob_id.is_not(None),
        )
        .limit(1)
    )
    return owned is not None


async def create(
    ctx: Context,
    user: User,
    space: str,
    parent_id: int,
    name: str,
    etag: str,
    size: int,
    duplicate: int = DUPLICATE_ERROR,
    api_version: int = 1,
) -> Created:
    """Start an upload. Bytes already stored (same md5 and size) make the file at once."""
    etag = check_etag(etag)
    slice_size = ctx.settings.slice_size
    async with ctx.db.write() as session:
        # Checked again here: the directory may have been deleted since the caller looked it up.
        if parent_id != tree.ROOT:
            parent = await tree.get(session, user.id, space, parent_id)
            if parent is None or not parent.is_dir:
                raise NotFound("parentFileID 目录不存在 (no such directory)")
        existing = await tree.name_taken(session, user.id, space, parent_id, name)
        if existing is not None and duplicate == DUPLICATE_ERROR:
            raise OpenpanError(f"filename 该目录下已存在同名文件: {name} (name already exists)")
        blob = (
            await blobs.acquire(session, etag, size)
            if await _may_reuse(ctx, session, user, etag, size)
            else None
        )
        if blob is not None:
            if space == SPACE_DISK:  # the file appears now: its size counts at once
                await disk.check_space_locked(session, ctx, user, size)
            final_name, doomed = await _claim_name(session, user, space, parent_id, name, duplicate)
            # Overwrite: the old entry goes first, or the new one would clash with its name.
            keys = await tree.delete_entries(session, doomed)
            file = _new_file(user, space, parent_id, final_name, etag, size, blob.id)
            session.add(file)
            await session.flush()
        else:
            if space == SPACE_DISK:
                # Reserved now, in the transaction that starts the upload: parallel uploads
                # cannot together pass the quota that each alone fits in.
                await disk.check_space_locked(session, ctx, user, size)
            now = utcnow()
            upload = UploadSession(
                id=ids.preupload_id(),
                user_id=user.id,
                space=space,
                parent_id=parent_id,
                name=name,
                etag=etag,
                size=size,
                slice_size=slice_size,
                duplicate=duplicate,
                api_version=api_version,
                status=UploadStatus.OPEN,
                created_at=now,
                expires_at=now + timedelta(seconds=ctx.settings.upload_session_ttl),
            )
            session.add(upload)
    if blob is None:
        # After the commit: the expiry sweep treats slices without a session as abandoned.
        await ctx.multipart.start_upload(upload.id, size, slice_size)
        return Created(file=None, upload=upload, slice_size=slice_size)
    for key in keys:
        await ctx.blobs.delete(key)
    return Created(file=file, upload=None, slice_size=slice_size)


def _new_file(
    user: User, space: str, parent_id: int, name: str, etag: str, size: int, blob_id: int
) -> File:
    return File(
        **tree.new_entry(user.id, space, parent_id, name, blob_id=blob_id, size=size, etag=etag)
    )


async def _claim_name(
    session: Session, user: User, space: str, parent_id: int, name: str, duplicate: int
) -> tuple[str, list[File]]:
    """The name the new file gets, and entries to delete for it (overwrite)."""
    existing = await tree.name_taken(session, user.id, space, parent_id, name)
    if existing is None:
        return name, []
    if duplicate == DUPLICATE_OVERWRITE and not existing.is_dir:
        return name, [existing]
    if duplicate == DUPLICATE_KEEP_BOTH:
        return await tree.free_name(session, user.id, space, parent_id, name), []
    raise OpenpanError(f"filename 该目录下已存在同名文件: {name} (name already exists)")


async def _session_of(session: Session, user: User, upload_id: str, space: str) -> UploadSession:
    upload = await session.get(UploadSession, upload_id)
    if upload is None or upload.user_id != user.id or upload.space != space:
        raise NotFound("preuploadID 上传任务不存在或已过期 (no such upload)")
    return upload


async def upload_url(
    ctx: Context, user: User, upload_id: str, number: int, space: str
) -> tuple[str, bool]:
    """The presigned URL for slice ``number`` and whether the upload has several slices."""
    async with ctx.db.read() as session:
        upload = await _session_of(session, user, upload_id, space)
    _check_open(upload)
    count = part_count(upload.size, upload.slice_size)
    if number > count:
        raise FieldError(
            "sliceNo", f"超出范围: 该文件共{count}个分片 (the file has {count} slices)"
        )
    expires_in = ctx.settings.presign_ttl
    url = await ctx.multipart.presign_part(upload.id, number, expires_in)
    if url is None:
        expires = epoch(utcnow()) + expires_in
        url = links.presigned_slice_url(ctx.settings, ctx.signing_key, upload.id, number, expires)
    return url, count > 1


def _check_open(upload: UploadSession) -> None:
    if upload.expires_at <= utcnow():
        raise NotFound("preuploadID 上传任务已过期 (upload expired)")
    if upload.status != UploadStatus.OPEN:
        raise OpenpanError("preuploadID 上传已提交, 不能再上传分片 (upload already completed)")


async def receive_slice(
    ctx: Context,
    upload_id: str,
    number: int,
    expires: int,
    signature: str,
    body: AsyncIterator[bytes],
    declared_size: int | None = None,
) -> None:
    """Store a slice PUT to a presigned URL (no token: the signature is the authority).

    ``declared_size`` (the Content-Length) lets a slice of the wrong size be refused unread.
    """
    if not links.slice_signature_ok(ctx.signing_key, upload_id, number, expires, signature):
        raise OpenpanError("signature 签名无效 (bad signature)")
    if expires < epoch(utcnow()):
        raise OpenpanError("expires 上传地址已过期 (URL expired)")
    async with ctx.db.read() as session:
        upload = await session.get(UploadSession, upload_id)
    if upload is None:
        raise NotFound("preuploadID 上传任务不存在或已过期 (no such upload)")
    _check_open(upload)
    offset, size = part_span(upload, number)
    if declared_size is not None and declared_size != size:
        raise OpenpanError(
            f"slice 分片大小错误: 分片{number}应为{size}字节 (slice {number} must be {size} bytes)"
        )
    try:
        await ctx.multipart.write_part(upload.id, number, offset, size, body)
    except PartSizeError as exc:
        raise OpenpanError(f"slice 分片大小错误: {exc}") from exc
    except StorageError:
        # The upload was completed or expired while this slice came in: say so. Anything else
        # is the store's fault and goes up as it is.
        async with ctx.db.read() as session:
            now = await session.get(UploadSession, upload_id)
        if now is None:
            raise NotFound("preuploadID 上传任务不存在或已过期 (no such upload)") from None
        _check_open(now)
        raise


async def list_parts(ctx: Context, user: User, upload_id: str, space: str) -> list[PartInfo]:
    async with ctx.db.read() as session:
        upload = await _session_of(session, user, upload_id, space)
    if upload.status in (UploadStatus.DONE, UploadStatus.FAILED):
        return []
    return await ctx.multipart.list_parts(upload.id, upload.slice_size)


async def resume_interrupted(ctx: Context) -> int:
    """At start (embedded: no request of this process can be finishing one now): the backup
    jobs of uploads whose ``upload_complete`` a crash cut off are made due at once, so a
    client polling ``upload_async_result`` sees the file within seconds of the restart, not a
    minute later. Returns how many."""
    async with ctx.db.write() as session:
        due = await session.execute(
            update(Job)
            .where(
                Job.kind == FINISH_JOB,
                Job.status == JobStatus.QUEUED,
                Job.run_after > utcnow(),
            )
            .values(run_after=utcnow())
        )
        return int(due.rowcount or 0)


async def complete(ctx: Context, user: User, upload_id: str, space: str) -> Completion:
    """Finish an upload: verified now when small, in the background (``async``) when large."""
    async with ctx.db.read() as session:
        upload = await _session_of(session, user, upload_id, space)
    if upload.status in (UploadStatus.DONE, UploadStatus.VERIFYING, UploadStatus.FAILED):
        return await result(ctx, user, upload_id, space)
    _check_open(upload)
    count = part_count(upload.size, upload.slice_size)
    present = await ctx.multipart.part_numbers(upload.id)
    missing = [n for n in range(1, count + 1) if n not in present]
    if missing and upload.size > 0:
        raise OpenpanError(f"preuploadID 分片不完整, 缺少分片 {missing[:10]} (slices missing)")
    async with ctx.db.write() as session:
        started = await session.execute(
            update(UploadSession)
            .where(UploadSession.id == upload.id, UploadSession.status == UploadStatus.OPEN)
            .values(status=UploadStatus.VERIFYING)
        )
        if started.rowcount != 1:
            # A parallel complete got here first; answer as it will.
            return Completion(completed=False, is_async=True, file=None)
        # Small uploads are verified in this request; their job is the safety net that finishes
        # one if this process dies first, and waits long enough not to race the request.
        large = upload.size > ctx.settings.sync_complete_max
        await enqueue(
            session, FINISH_JOB, {"upload_id": upload.id}, delay=0 if large else FINISH_BACKUP_DELAY
        )
    if upload.size > ctx.settings.sync_complete_max:
        ctx.jobs.notify()
        return Completion(completed=False, is_async=True, file=None)
    await finish(ctx, upload.id)
    return await result(ctx, user, upload_id, space)


async def result(ctx: Context, user: User, upload_id: str, space: str) -> Completion:
    """Where an upload stands (``upload_async_result``)."""
    async with ctx.db.read() as session:
        upload = await _session_of(session, user, upload_id, space)
        if upload.status == UploadStatus.FAILED:
            raise OpenpanError(upload.error or "上传失败 (upload failed)")
        if upload.status != UploadStatus.DONE or upload.file_id is None:
            return Completion(completed=False, is_async=True, file=None)
        file = await session.get(File, upload.file_id)
    return Completion(completed=file is not None, is_async=False, file=file)


def _blob_key(upload: UploadSession) -> str:
    # Derived from the session, so a finish that a crash interrupted finds its bytes again.
    return blobs.new_key(
        upload.etag, upload.size, tag=hashlib.sha256(upload.id.encode()).hexdigest()[:8]
    )


async def finish(ctx: Context, upload_id: str) -> None:
    """Verify and commit an upload in state ``verifying``; idempotent, so a job may re-run it."""
    # One finish per upload at a time in this process: the request completing a small upload
    # and the job behind it must not both assemble it.
    lock = _finishing.get(upload_id)
    if lock is None:
        lock = _finishing[upload_id] = asyncio.Lock()
    async with lock:
        await _finish(ctx, upload_id)


_finishing: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def _finish(ctx: Context, upload_id: str) -> None:
    async with ctx.db.read() as session:
        upload = await session.get(UploadSession, upload_id)
    if upload is None or upload.status != UploadStatus.VERIFYING:
        return
    key = _blob_key(upload)
    if not await ctx.blobs.exists(key):
        try:
            if upload.size == 0:
                path = ctx.temp_files.temp_path()
                path.write_bytes(b"")
                await ctx.blobs.put_file(key, path)
                await ctx.multipart.abort_upload(upload.id)
            else:
                whole = await ctx.multipart.assemble(
                    upload.id, part_count(upload.size, upload.slice_size)
                )
                if whole.size != upload.size or whole.md5 != upload.etag:
                    await _fail(
                        ctx,
                        upload,
                        f"etag 文件校验失败: 上传内容的md5为{whole.md5}, "
                        f"与预上传的{upload.etag}不一致 "
                        "(md5 of the uploaded bytes does not match etag)",
                    )
                    return
                await ctx.multipart.commit_upload(upload.id, key)
        except StorageError as exc:
            if not await ctx.blobs.exists(key):  # else another process finished it meanwhile
                await _fail(ctx, upload, f"上传失败, 请重新上传 (upload failed: {exc})")
                return
    else:
        # A finish cut off after its bytes became the blob: drop what is left of the slices.
        await ctx.multipart.abort_upload(upload.id)
    try:
        async with ctx.db.write() as session:
            current = await session.get(UploadSession, upload_id)
            if current is None or current.status != UploadStatus.VERIFYING:
                return
            user = await session.get(User, current.user_id)
            assert user is not None
            blob, stored = await blobs.register(session, current.etag, current.size, key)
            final_name, doomed = await _claim_name(
                session, user, current.space, current.parent_id, current.name, current.duplicate
            )
            parent_ok = current.parent_id == tree.ROOT or await tree.get(
                session, user.id, current.space, current.parent_id
            )
            if not parent_ok:
                raise OpenpanError("parentFileID 目录已被删除 (the target directory is gone)")
            file = _new_file(
                user,
                current.space,
                current.parent_id,
                final_name,
                current.etag,
                current.size,
                blob.id,
            )
            doomed_keys = await tree.delete_entries(session, doomed)  # before the new name
            session.add(file)
            try:
                await session.flush()
            except IntegrityError as exc:  # the name was taken a moment ago
                raise OpenpanError(
                    f"filename 该目录下已存在同名文件: {current.name} (name already exists)"
                ) from exc
            current.status = UploadStatus.DONE
            current.file_id = file.id
    except OpenpanError as exc:
        await ctx.blobs.delete(key)
        await _fail(ctx, upload, exc.message)
        return
    if not stored:
        await ctx.blobs.delete(key)
    elif upload.space == SPACE_OSS:
        await variant_store.remember_image(ctx, key)
    for doomed_key in doomed_keys:
        await ctx.blobs.delete(doomed_key)


async def adopt_file(
    ctx: Context,
    user: User,
    space: str,
    parent_id: int,
    name: str,
    path: Path,
    md5: str,
    size: int,
    duplicate: int = DUPLICATE_ERROR,
) -> File:
    """Make a complete, already hashed local file (``path``, consumed) a file of ``user``.

    Used by one-step uploads. Same order as ``finish``: the bytes become durable first, then the
    row that makes the file visible is committed; identical stored bytes win over the new copy.
    """
    key = blobs.new_key(md5, size)
    await ctx.blobs.put_file(key, path)
    try:
        async with ctx.db.write() as session:
            if space == SPACE_DISK:  # checked when it began; now in the transaction that adds it
                await disk.check_space_locked(session, ctx, user, size)
            blob, stored = await blobs.register(session, md5, size, key)
            final_name, doomed = await _claim_name(session, user, space, parent_id, name, duplicate)
            doomed_keys = await tree.delete_entries(session, doomed)  # before the new name
            file = _new_file(user, space, parent_id, final_name, md5, size, blob.id)
            session.add(file)
            await session.flush()
    except BaseException:
        await ctx.blobs.delete(key)
        raise
    if not stored:
        await ctx.blobs.delete(key)
    elif space == SPACE_OSS:
        await variant_store.remember_image(ctx, key)
    for doomed_key in doomed_keys:
        await ctx.blobs.delete(doomed_key)
    return file


async def _fail(ctx: Context, upload: UploadSession, reason: str) -> None:
    # The slices go first, so that once the failure can be seen nothing of the upload is left
    # (the other way round, a client could read the failure while the slices were still there).
    # A session that has left UploadStatus.VERIFYING meanwhile (another process finished it) has no
    # slices left to remove; one cut off here by a crash is still verifying, and its finish job
    # fails again, for the missing slices.
    await ctx.multipart.abort_upload(upload.id)
    async with ctx.db.write() as session:
        await session.execute(
            update(UploadSession)
            .where(UploadSession.id == upload.id, UploadSession.status == UploadStatus.VERIFYING)
            .values(status=UploadStatus.FAILED, error=reason)
        )


async def finish_job(ctx: Context, payload: dict[str, object]) -> None:
    await finish(ctx, str(payload["upload_id"]))


async def expire_sessions(ctx: Context) -> int:
    """Remove upload sessions past their deadline, and slices no session owns. Returns the count."""
    now = utcnow()
    # Listed before the sessions are read: an upload's slices appear only after its session
    # is committed, so one being created now is never taken for an orphan.
    stored = await ctx.multipart.list_uploads()
    async with ctx.db.read() as session:
        expired = (
            await session.scalars(
                select(UploadSession.id).where(
                    UploadSession.expires_at <= now,
                    # One being verified gets a grace period; after it, its job has given up.
                    or_(
                        UploadSession.status != UploadStatus.VERIFYING,
                        UploadSession.expires_at <= now - VERIFYING_GRACE,
                    ),
                )
            )
        ).all()
    for upload_id in expired:
        async with ctx.db.write() as session:
            await session.execute(sql_delete(UploadSession).where(UploadSession.id == upload_id))
        await ctx.multipart.abort_upload(upload_id)
    async with ctx.db.read() as session:
        known = set((await session.scalars(select(UploadSession.id))).all())
    for upload_id in stored:
        if upload_id not in known:
            await ctx.multipart.abort_upload(upload_id)
    return len(expired)
