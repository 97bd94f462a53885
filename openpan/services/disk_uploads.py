"""Uploads into the cloud disk: the checks that come before the shared upload flow
(``services/uploads.py``), the V2 slice (a form part with its md5, sent to the upload server
with a token), and the one-step upload of a whole file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from openpan.clock import utcnow
from openpan.db.models import SPACE_DISK, File, UploadSession, User
from openpan.db.statuses import UploadStatus
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.services import disk, tree, uploads
from openpan.services.context import Context
from openpan.services.names import check_name
from openpan.storage import PartSizeError

SINGLE_MAX = 1024**3
"""One-step upload: at most 1 GB (the real service's limit)."""
READ_CHUNK = 1024 * 1024
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


async def _target(ctx: Context, user: User, new: NewFile) -> tuple[int, str]:
    """Check name, size and space, then the directory the file goes in (made with
    ``containDir``) and its name."""
    if new.contain_dir:
        dirs, name = disk.split_path(new.filename)
    else:
        dirs, name = [], check_name("filename", new.filename)
    if new.size > disk.MAX_FILE_SIZE:
        raise FieldError("size", f"不能大于{disk.MAX_FILE_SIZE}字节 (files are at most 10 GB)")
    await disk.check_space(ctx, user, new.size)
    return await disk.make_dirs(ctx, user, new.parent_id, dirs), name


@dataclass(frozen=True)
class NewFile:
    """What a client asks to upload into the cloud disk (the fields of ``create``)."""

    parent_id: int
    filename: str
    etag: str
    size: int
    duplicate: int
    contain_dir: bool


async def create(ctx: Context, user: User, new: NewFile, api_version: int) -> uploads.Created:
    """Start an upload into the cloud disk (``/upload/v1|v2/file/create``)."""
    etag = uploads.check_etag(new.etag)
    parent, name = await _target(ctx, user, new)
    return await uploads.create(
        ctx, user, SPACE_DISK, parent, name, etag, new.size, new.duplicate, api_version
    )


async def receive_slice(
    ctx: Context,
    user: User,
    upload_id: str,
    number: int,
    slice_md5: str,
    path: Path,
    size: int,
    received_md5: str,
) -> None:
    """Store a V2 slice that arrived in a form (``size`` bytes hashing to ``received_md5``,
    kept at ``path``).

    The declared ``sliceMD5`` must match the bytes; a slice that does not leaves the upload as
    it was (a good copy sent before stays).
    """
    if not _MD5.match(slice_md5):
        raise FieldError("sliceMD5", "必须是32位十六进制的md5 (must be a 32-character hex md5)")
    async with ctx.db.read() as session:
        upload = await session.get(UploadSession, upload_id)
    if upload is None or upload.user_id != user.id or upload.space != SPACE_DISK:
        raise NotFound("preuploadID 上传任务不存在或已过期 (no such upload)")
    if upload.expires_at <= utcnow():
        raise NotFound("preuploadID 上传任务已过期 (upload expired)")
    if upload.status != UploadStatus.OPEN:
        raise OpenpanError("preuploadID 上传已提交, 不能再上传分片 (upload already completed)")
    count = uploads.part_count(upload.size, upload.slice_size)
    if number > count:
        raise FieldError(
            "sliceNo", f"超出范围: 该文件共{count}个分片 (the file has {count} slices)"
        )
    offset, expected = uploads.part_span(upload, number)
    if size != expected:
        raise FieldError(
            "slice", f"分片大小错误: 第{number}片应为{expected}字节, 收到{size}字节 (wrong size)"
        )
    if received_md5 != slice_md5.lower():
        raise FieldError(
            "sliceMD5",
            f"分片md5校验失败: 收到的分片md5为{received_md5} "
            "(the slice's md5 does not match sliceMD5)",
        )
    try:
        # Its md5 is known now: the store keeps it rather than hashing the slice again.
        await ctx.multipart.write_part(upload.id, number, offset, size, _chunks(path), received_md5)
    except PartSizeError as exc:
        raise FieldError("slice", f"分片大小错误: {exc}") from exc


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as handle:
        while chunk := await handle.read(READ_CHUNK):
            yield chunk


async def complete_v2(ctx: Context, user: User, upload_id: str) -> File | None:
    """V2 ``upload_complete``: the file once verified, ``None`` while still verifying."""
    done = await uploads.complete(ctx, user, upload_id, SPACE_DISK)
    return done.file if done.completed else None


async def single(
    ctx: Context, user: User, new: NewFile, path: Path, received_md5: str, received_size: int
) -> File:
    """One-step upload: the whole file arrived at ``path`` (consumed either way)."""
    size, duplicate = new.size, new.duplicate
    try:
        etag = uploads.check_etag(new.etag)
        if received_size != size:
            raise FieldError(
                "size", f"与文件实际大小{received_size}不一致 (does not match the file's size)"
            )
        if received_md5 != etag:
            raise FieldError(
                "etag",
                f"文件校验失败: 上传内容的md5为{received_md5} (md5 of the file does not match)",
            )
        parent, name = await _target(ctx, user, new)
        if duplicate == uploads.DUPLICATE_ERROR:
            async with ctx.db.read() as session:
                if await tree.name_taken(session, user.id, SPACE_DISK, parent, name):
                    raise OpenpanError(
                        f"filename 该目录下已存在同名文件: {name} (name already exists)"
                    )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return await uploads.adopt_file(
        ctx, user, SPACE_DISK, parent, name, path, etag, size, duplicate
    )
