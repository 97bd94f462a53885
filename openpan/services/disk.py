"""The cloud disk (云盘): directories and files of one user, addressed by numeric IDs.

IDs are ``files.id``; the root is ``0``. Trashing marks only the entry the user named
(``trashed``); what lies inside a trashed directory stays as it is and is in the trash by way of
its ancestor, so recovering the directory brings all of it back, and a file trashed on its own
beforehand stays in the trash. Space is counted per user over every cloud-disk file, trashed or
not (the trash still holds the bytes), and checked against the quota when an upload starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, false, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from openpan.clock import utcnow
from openpan.db.engine import one_writer
from openpan.db.models import SPACE_DISK, File, UploadSession, User, table_of
from openpan.db.session import Session, hot
from openpan.db.statuses import UploadStatus
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.services import tree
from openpan.services.context import Context
from openpan.services.daily_traffic import DailyTraffic, today
from openpan.services.names import IMAGE_EXTENSIONS, check_name, extension

ROOT = tree.ROOT
_Query = TypeVar("_Query", bound=Select[Any])
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_FILE_SIZE = 10 * 1024**3
"""The real service's limit for one file uploaded by a developer (10 GB)."""

CATEGORY_UNKNOWN, CATEGORY_AUDIO, CATEGORY_VIDEO, CATEGORY_IMAGE = 0, 1, 2, 3
_AUDIO = frozenset({"mp3", "wav", "flac", "aac", "ogg", "oga", "m4a", "wma", "ape", "amr", "opus"})
_VIDEO = frozenset(
    {"mp4", "mkv", "avi", "mov", "wmv", "flv", "webm", "m4v", "ts", "rmvb", "rm", "3gp", "mpg"}
    | {"mpeg", "m2ts", "vob"}
)
_IMAGE = IMAGE_EXTENSIONS | {"heic", "heif", "ico", "avif"}

ORDER_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "file_id": File.id,
    "fileid": File.id,
    "id": File.id,
    "file_name": File.name,
    "filename": File.name,
    "name": File.name,
    "size": File.size,
    "create_at": File.created_at,
    "createat": File.created_at,
    "update_at": File.updated_at,
    "updateat": File.updated_at,
}


def category(entry: File) -> int:
    """0 unknown, 1 audio, 2 video, 3 image (by extension, as the listing's ``category``)."""
    if entry.is_dir:
        return CATEGORY_UNKNOWN
    if entry.ext in _AUDIO:
        return CATEGORY_AUDIO
    if entry.ext in _VIDEO:
        return CATEGORY_VIDEO
    if entry.ext in _IMAGE:
        return CATEGORY_IMAGE
    return CATEGORY_UNKNOWN


# Lookups --------------------------------------------------------------------------------------


async def get(session: Session, user: User, file_id: int) -> File | None:
    """A cloud-disk entry of this user (trashed or not); another user's is never found."""
    return await tree.get(session, user.id, SPACE_DISK, file_id)


async def in_trash(session: Session, user: User, entry: File) -> bool:
    """Whether the entry is in the trash, itself or by way of a trashed directory above it."""
    current: File | None = entry
    for _ in range(10_000):
        if current is None:
            return True  # an ancestor is gone: nothing reachable is left of this entry
        if current.trashed:
            return True
        if current.parent_id == ROOT:
            return False
        current = await get(session, user, current.parent_id)
    return True


async def live(session: Session, user: User, field: str, file_id: int) -> File:
    """An entry that exists, is this user's and is not in the trash; otherwise ``NotFound``."""
    entry = await get(session, user, file_id)
    if entry is None or await in_trash(session, user, entry):
        raise NotFound(f"{field} 文件不存在 (no such file: {file_id})")
    return entry


async def live_dir(session: Session, user: User, field: str, dir_id: int) -> int:
    """The ID of a directory files can be put in (``0`` for the root), or ``NotFound``."""
    if dir_id == ROOT:
        return ROOT
    entry = await get(session, user, dir_id)
    if entry is None or not entry.is_dir or await in_trash(session, user, entry):
        raise NotFound(f"{field} 目录不存在 (no such directory: {dir_id})")
    return entry.id


async def _entries(session: Session, user: User, field: str, file_ids: list[int]) -> list[File]:
    """The entries named, all of them this user's, in the order given; else ``NotFound``."""
    wanted = list(dict.fromkeys(file_ids))
    found = (
        await session.scalars(
            select(File).where(
                File.id.in_(wanted), File.user_id == user.id, File.space == SPACE_DISK
            )
        )
    ).all()
    by_id = {f.id: f for f in found}
    missing = [str(i) for i in wanted if i not in by_id]
    if missing:
        raise NotFound(f"{field} 文件不存在 (no such file: {', '.join(missing[:5])})")
    return [by_id[i] for i in wanted]


async def _flush_unique(session: Session, field: str) -> None:
    """Flush, turning a lost race on the unique-name index into the same answer as a clash."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise OpenpanError(f"{field} 该目录下已存在同名文件 (name already exists)") from exc


# Space ----------------------------------------------------------------------------------------


def quota_of(ctx: Context, user: User) -> int:
    """The user's cloud-disk space in bytes: their own setting, else the server's default."""
    return user.storage_quota if user.storage_quota is not None else ctx.settings.disk_quota


_files = table_of(File)
# Core, written once: every upload and download into the cloud disk asks.
_SPACE_USED = hot(
    select(func.coalesce(func.sum(_files.c.size), 0)).where(
        _files.c.user_id == bindparam("user_id"),
        _files.c.space == SPACE_DISK,
        _files.c.is_dir.is_(False),
    )
)


_sessions = table_of(UploadSession)
# Space held by the user's uploads under way: reserved when one is created, turned into a file's
# when it commits, given back when it fails or expires.
_SPACE_RESERVED = hot(
    select(func.coalesce(func.sum(_sessions.c.size), 0)).where(
        _sessions.c.user_id == bindparam("user_id"),
        _sessions.c.space == SPACE_DISK,
        _sessions.c.status.in_([UploadStatus.OPEN, UploadStatus.VERIFYING]),
    )
)


async def space_used(session: Session, user: User) -> int:
    """Bytes of every cloud-disk file of the user, the trash included."""
    used = await session.scalar(_SPACE_USED, {"user_id": user.id})
    return int(used or 0)


async def space_reserved(session: Session, user: User) -> int:
    """Bytes of the user's cloud-disk uploads not committed yet."""
    reserved = await session.scalar(_SPACE_RESERVED, {"user_id": user.id})
    return int(reserved or 0)


async def check_space(ctx: Context, user: User, size: int) -> None:
    """Refuse an upload of ``size`` bytes that would take the user past their quota."""
    async with ctx.db.read() as session:
        used = await space_used(session, user)
    _within_quota(ctx, user, used, size)


async def check_space_locked(session: Session, ctx: Context, user: User, size: int) -> None:
    """``check_space`` inside the transaction that adds the file or starts the upload, with the
    space uploads under way hold counted as taken. The user's row is locked first, so uploads
    of one user racing on several processes are counted one after another (SQLite has one
    writer at a time anyway)."""
    if not one_writer(session):
        await session.execute(select(User.id).where(User.id == user.id).with_for_update())
    taken = await space_used(session, user) + await space_reserved(session, user)
    _within_quota(ctx, user, taken, size)


def _within_quota(ctx: Context, user: User, used: int, size: int) -> None:
    quota = quota_of(ctx, user)
    if used + size > quota:
        raise OpenpanError(
            f"size 云盘空间不足: 已用{used}字节, 总空间{quota}字节, 本文件{size}字节 "
            "(not enough cloud-disk space: delete files or empty the trash)"
        )


# Directories ----------------------------------------------------------------------------------


async def _mkdir_in(session: Session, user: User, parent_id: int, name: str) -> File:
    entry = File(**tree.new_entry(user.id, SPACE_DISK, parent_id, name))
    session.add(entry)
    await _flush_unique(session, "name")
    return entry


async def mkdir(ctx: Context, user: User, parent_id: int, name: str) -> File:
    """Create a directory; a live entry of that name in the parent is an error."""
    check_name("name", name)
    async with ctx.db.write() as session:
        parent = await live_dir(session, user, "parentID", parent_id)
        if await tree.name_taken(session, user.id, SPACE_DISK, parent, name):
            raise OpenpanError(f"name 该目录下已经有同名文件夹: {name} (name already exists)")
        return await _mkdir_in(session, user, parent, name)


def split_path(path: str) -> tuple[list[str], str]:
    """``/你好/123/测试文件.mp4`` → (["你好", "123"], "测试文件.mp4"), every part checked."""
    parts = [p for p in path.replace("\\", "/").split("/") if p != ""]
    if not parts:
        raise FieldError("filename", "不能为空 (must not be empty)")
    for part in parts:
        check_name("filename", part)
    return parts[:-1], parts[-1]


async def make_dirs(ctx: Context, user: User, parent_id: int, dirs: list[str]) -> int:
    """``containDir``: the directory at ``dirs`` below ``parent_id``, made where missing."""
    if not dirs:
        async with ctx.db.read() as session:
            return await live_dir(session, user, "parentFileID", parent_id)
    async with ctx.db.write() as session:
        current = await live_dir(session, user, "parentFileID", parent_id)
        for name in dirs:
            existing = await tree.name_taken(session, user.id, SPACE_DISK, current, name)
            if existing is not None and not existing.is_dir:
                raise OpenpanError(f"filename 路径中的 {name} 已是文件 (a path part is a file)")
            entry = existing or await _mkdir_in(session, user, current, name)
            current = entry.id
        return current


# Listings -------------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of a listing: entries, the names of their parents, and where to go on."""

    files: list[File]
    parent_names: dict[int, str]
    last_file_id: int = -1
    total: int = 0


def _search(query: _Query, text: str, exact: bool) -> _Query:
    if _CONTROL.search(text):
        # No name holds one, and SQLite would cut the pattern short at a NUL: match nothing.
        return query.where(false())
    if exact:
        return query.where(File.name == text)
    # Fuzzy: every word must appear in the name, in any case.
    terms: list[ColumnElement[bool]] = [
        func.lower(File.name).contains(word.lower(), autoescape=True) for word in text.split()
    ]
    return query.where(and_(*terms)) if terms else query


async def _parent_names(session: Session, entries: list[File]) -> dict[int, str]:
    wanted = {e.parent_id for e in entries if e.parent_id != ROOT}
    if not wanted:
        return {}
    rows = await session.execute(select(File.id, File.name).where(File.id.in_(wanted)))
    return {row.id: row.name for row in rows}


async def _listable_dir(session: Session, user: User, dir_id: int) -> None:
    # Listing a directory in the trash is allowed (that is how its contents are seen).
    if dir_id != ROOT:
        entry = await get(session, user, dir_id)
        if entry is None or not entry.is_dir:
            raise NotFound(f"parentFileId 目录不存在 (no such directory: {dir_id})")


async def list_v2(
    ctx: Context,
    user: User,
    parent_id: int,
    limit: int,
    last_file_id: int,
    search: str = "",
    exact: bool = False,
    trashed: bool | None = None,
) -> Page:
    """A page of a directory, or of a search over the whole disk, by ID (``/api/v2/file/list``).

    Trashed entries are included with their flag, as the real service does, unless ``trashed``
    asks for one kind only. ``last_file_id`` is ``-1`` on the last page.
    """
    async with ctx.db.read() as session:
        query = select(File).where(File.user_id == user.id, File.space == SPACE_DISK)
        if search:
            query = _search(query, search, exact)
        else:
            await _listable_dir(session, user, parent_id)
            query = query.where(File.parent_id == parent_id)
        if trashed is not None:
            query = query.where(File.trashed.is_(trashed))
        if last_file_id > 0:
            query = query.where(File.id > last_file_id)
        rows = list((await session.scalars(query.order_by(File.id).limit(limit + 1))).all())
        page = rows[:limit]
        names = await _parent_names(session, page)
    more = len(rows) > limit
    return Page(files=page, parent_names=names, last_file_id=page[-1].id if more else -1)


async def list_v1(
    ctx: Context,
    user: User,
    parent_id: int,
    page: int,
    limit: int,
    order_by: str,
    descending: bool,
    trashed: bool,
    search: str = "",
) -> Page:
    """A numbered page (``/api/v1/file/list``): a directory's live entries, a search, or with
    ``trashed`` the trash (every entry the user put there, wherever it was)."""
    column = ORDER_COLUMNS[order_by]
    async with ctx.db.read() as session:
        query = select(File).where(File.user_id == user.id, File.space == SPACE_DISK)
        if trashed:
            query = query.where(File.trashed.is_(True))
        else:
            query = query.where(File.trashed.is_(False))
        if search:
            query = _search(query, search, exact=False)
        elif not trashed:
            await _listable_dir(session, user, parent_id)
            query = query.where(File.parent_id == parent_id)
        total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
        order = [column.desc(), File.id.desc()] if descending else [column.asc(), File.id.asc()]
        rows = list(
            (
                await session.scalars(
                    query.order_by(*order).offset((page - 1) * limit).limit(limit)
                )
            ).all()
        )
        names = await _parent_names(session, rows)
    return Page(files=rows, parent_names=names, total=total)


async def detail(ctx: Context, user: User, file_id: int) -> tuple[File, int]:
    """An entry and its size; a directory's size is that of everything inside it."""
    async with ctx.db.read() as session:
        entry = await get(session, user, file_id)
        if entry is None:
            raise NotFound(f"fileID 文件不存在 (no such file: {file_id})")
        size = entry.size
        if entry.is_dir:
            inside = await tree.descendant_ids(session, user.id, SPACE_DISK, entry.id)
            size = 0
            for start in range(0, len(inside), 500):
                batch = inside[start : start + 500]
                size += int(
                    await session.scalar(
                        select(func.coalesce(func.sum(File.size), 0)).where(
                            File.id.in_(batch), File.is_dir.is_(False)
                        )
                    )
                    or 0
                )
    return entry, size


async def infos(ctx: Context, user: User, file_ids: list[int]) -> list[File]:
    """The entries among ``file_ids`` that exist and are this user's, in the order asked."""
    async with ctx.db.read() as session:
        by_id = await tree.entries_by_id(session, user.id, SPACE_DISK, file_ids)
    return [by_id[i] for i in dict.fromkeys(file_ids) if i in by_id]


# Changes --------------------------------------------------------------------------------------


async def move(ctx: Context, user: User, file_ids: list[int], target_id: int) -> None:
    """Move entries into a directory: all of them, or none if one cannot go."""
    async with ctx.db.write() as session:
        target = await live_dir(session, user, "toParentFileID", target_id)
        entries = await _entries(session, user, "fileIDs", file_ids)
        for entry in entries:
            if await in_trash(session, user, entry):
                raise NotFound(f"fileIDs 文件不存在或在回收站中 (in the trash: {entry.id})")
        await tree.move_entries(
            session,
            user.id,
            SPACE_DISK,
            entries,
            target,
            shown=lambda entry: entry.id,
            clash_prefix="toParentFileID ",
        )
        await _flush_unique(session, "toParentFileID")


async def _rename_in(session: Session, user: User, file_id: int, name: str) -> File:
    entry = await get(session, user, file_id)
    if entry is None or await in_trash(session, user, entry):
        raise NotFound(f"fileId 文件不存在 (no such file: {file_id})")
    if entry.name == name:
        return entry
    clash = await tree.name_taken(session, user.id, SPACE_DISK, entry.parent_id, name)
    if clash is not None and clash.id != entry.id:
        raise OpenpanError(f"fileName 该目录下已存在同名文件: {name} (name already exists)")
    entry.name = name
    entry.ext = "" if entry.is_dir else extension(name)
    entry.updated_at = utcnow()
    await _flush_unique(session, "fileName")
    return entry


async def rename(ctx: Context, user: User, file_id: int, name: str) -> File:
    """Give one entry a new name (``/api/v1/file/name``)."""
    check_name("fileName", name)
    async with ctx.db.write() as session:
        return await _rename_in(session, user, file_id, name)


async def rename_many(
    ctx: Context, user: User, renames: list[tuple[int, str]]
) -> tuple[list[File], list[tuple[int, str]]]:
    """Rename several entries (``/api/v1/file/rename``); each succeeds or fails on its own.

    Returns the renamed entries and ``(fileID, reason)`` for the others.
    """
    done: list[File] = []
    failed: list[tuple[int, str]] = []
    async with ctx.db.write() as session:
        for file_id, name in renames:
            try:
                check_name("fileName", name)
                async with session.begin_nested():
                    done.append(await _rename_in(session, user, file_id, name))
            except OpenpanError as exc:
                failed.append((file_id, exc.message))
    return done, failed


async def trash(ctx: Context, user: User, file_ids: list[int]) -> None:
    """Put entries in the trash (a directory takes what is inside along)."""
    async with ctx.db.write() as session:
        entries = await _entries(session, user, "fileIDs", file_ids)
        now = utcnow()
        for entry in entries:
            if not entry.trashed:
                entry.trashed = True
                entry.trashed_at = now
                entry.updated_at = now


async def _restore(session: Session, user: User, entry: File, parent_id: int) -> None:
    entry.name = await tree.free_name(session, user.id, SPACE_DISK, parent_id, entry.name)
    entry.parent_id = parent_id
    entry.trashed = False
    entry.trashed_at = None
    entry.updated_at = utcnow()
    await _flush_unique(session, "fileIDs")


async def recover(ctx: Context, user: User, file_ids: list[int]) -> list[int]:
    """Take entries out of the trash, back where they were.

    Returns the IDs that could not go back because their directory is gone or in the trash
    (``abnormalFileIDs``: recover them with ``recover_to``). A name taken meanwhile gets a
    suffix rather than failing.
    """
    abnormal: list[int] = []
    async with ctx.db.write() as session:
        entries = await _entries(session, user, "fileIDs", file_ids)
        for entry in entries:
            if not entry.trashed:
                continue
            if entry.parent_id != ROOT:
                parent = await get(session, user, entry.parent_id)
                if parent is None or await in_trash(session, user, parent):
                    abnormal.append(entry.id)
                    continue
            await _restore(session, user, entry, entry.parent_id)
    return abnormal


async def recover_to(ctx: Context, user: User, file_ids: list[int], parent_id: int) -> None:
    """Take entries out of the trash into a chosen directory (``/api/v1/file/recover/by_path``)."""
    async with ctx.db.write() as session:
        target = await live_dir(session, user, "parentFileID", parent_id)
        entries = await _entries(session, user, "fileIDs", file_ids)
        for entry in entries:
            if not entry.trashed:
                continue
            await _restore(session, user, entry, target)


async def delete(ctx: Context, user: User, file_ids: list[int]) -> None:
    """Delete entries for good; only what is in the trash can be."""
    async with ctx.db.write() as session:
        entries = await _entries(session, user, "fileIDs", file_ids)
        for entry in entries:
            if not await in_trash(session, user, entry):
                raise OpenpanError(
                    f"fileIDs 文件不在回收站中, 请先删除至回收站: {entry.id} "
                    "(only files in the trash can be deleted for good)"
                )
        keys = await tree.delete_entries(session, entries)
    for key in keys:
        await ctx.blobs.delete(key)


# The user -------------------------------------------------------------------------------------


@dataclass
class Account:
    """What ``/api/v1/user/info`` reports."""

    user: User
    space_used: int
    space_total: int
    traffic_used: int
    traffic_limit: int | None  # None: unlimited (VIP)


async def account(ctx: Context, user: User) -> Account:
    """Space used and available, and today's download traffic."""
    async with ctx.db.read() as session:
        used = await space_used(session, user)
        traffic = await ctx.part(DailyTraffic).used(session, user.id, today(ctx.settings.timezone))
    return Account(
        user=user,
        space_used=used,
        space_total=quota_of(ctx, user),
        traffic_used=traffic,
        traffic_limit=None if user.vip else ctx.settings.download_traffic_daily,
    )
