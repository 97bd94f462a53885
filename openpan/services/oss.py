"""The image bed (图床): directories and images of one user, addressed by opaque string IDs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from openpan.db.models import SPACE_OSS, Blob, File, User
from openpan.db.session import Session
from openpan.errors import FieldError, NotFound, OpenpanError
from openpan.services import tree, uploads, variant_store
from openpan.services.context import Context
from openpan.services.names import check_name
from openpan.services.variants import Source

ROOT_ID = ""


@dataclass
class Listed:
    """One page of a directory: entries with their parents' names, and the next cursor."""

    files: list[File]
    parent_names: dict[int, str]
    last_file_id: str


async def resolve_dir(session: Session, user: User, field: str, oss_id: str) -> File | None:
    """The directory an image-bed ID names (``None`` for the root), or ``NotFound``."""
    if oss_id == ROOT_ID:
        return None
    entry = await _by_oss_id(session, user, oss_id)
    if entry is None or not entry.is_dir:
        raise NotFound(f"{field} 目录不存在 (no such directory: {oss_id})")
    return entry


async def _by_oss_id(session: Session, user: User, oss_id: str) -> File | None:
    return await session.scalar(
        select(File).where(File.oss_id == oss_id, File.user_id == user.id, File.space == SPACE_OSS)
    )


async def parent_names(session: Session, entries: list[File]) -> dict[int, str]:
    wanted = {e.parent_id for e in entries if e.parent_id != tree.ROOT}
    if not wanted:
        return {}
    rows = await session.execute(select(File.id, File.name).where(File.id.in_(wanted)))
    return {row.id: row.name for row in rows}


async def parent_oss_ids(session: Session, entries: list[File]) -> dict[int, str]:
    wanted = {e.parent_id for e in entries if e.parent_id != tree.ROOT}
    if not wanted:
        return {}
    rows = await session.execute(select(File.id, File.oss_id).where(File.id.in_(wanted)))
    return {row.id: row.oss_id or "" for row in rows}


async def mkdir(ctx: Context, user: User, parent_oss_id: str, names: list[str]) -> list[File]:
    """Create one directory per name under a parent; a name already there is an error."""
    for name in names:
        check_name("name", name)
    if len(set(names)) != len(names):
        raise FieldError("name", "不能重名 (duplicate names)")
    async with ctx.db.write() as session:
        parent = await resolve_dir(session, user, "parentID", parent_oss_id)
        parent_id = parent.id if parent else tree.ROOT
        created: list[File] = []
        for name in names:
            if await tree.name_taken(session, user.id, SPACE_OSS, parent_id, name):
                raise OpenpanError(f"name 目录名已存在: {name} (name already exists)")
            entry = File(**tree.new_entry(user.id, SPACE_OSS, parent_id, name))
            session.add(entry)
            created.append(entry)
        await _flush_unique(session, "name")
    return created


async def list_dir(
    ctx: Context,
    user: User,
    parent_oss_id: str,
    limit: int,
    last_file_id: str,
    start: datetime | None,
    end: datetime | None,
    *,
    newest_first: bool = False,
) -> Listed:
    """A page of a directory, in creation order; ``lastFileId`` is ``"-1"`` on the last page.

    The cursor is the last ID returned and IDs sort by creation time, so files added or removed
    between pages neither repeat nor hide the others. ``newest_first`` (the web app's gallery;
    not a 123pan option) pages the other way.
    """
    async with ctx.db.read() as session:
        parent = await resolve_dir(session, user, "parentFileId", parent_oss_id)
        query = select(File).where(
            File.user_id == user.id,
            File.space == SPACE_OSS,
            File.parent_id == (parent.id if parent else tree.ROOT),
        )
        if last_file_id and last_file_id != "-1":
            after = File.oss_id < last_file_id if newest_first else File.oss_id > last_file_id
            query = query.where(after)
        if start is not None:
            query = query.where(File.created_at >= start)
        if end is not None:
            # endTime names a whole second: a file made during that second is in it.
            query = query.where(File.created_at < end + timedelta(seconds=1))
        order = File.oss_id.desc() if newest_first else File.oss_id
        rows = list((await session.scalars(query.order_by(order).limit(limit + 1))).all())
        page = rows[:limit]
        more = len(rows) > limit
        names = await parent_names(session, page)
    return Listed(
        files=page,
        parent_names=names,
        last_file_id=(page[-1].oss_id or "-1") if more and page else "-1",
    )


async def detail(ctx: Context, user: User, oss_id: str) -> tuple[File, str, str]:
    """An entry, its parent's image-bed ID (``""`` for the root) and its parent's name."""
    async with ctx.db.read() as session:
        entry = await _by_oss_id(session, user, oss_id)
        if entry is None:
            raise NotFound(f"fileID 文件不存在 (no such file: {oss_id})")
        names = await parent_names(session, [entry])
        parent_ids = await parent_oss_ids(session, [entry])
    return entry, parent_ids.get(entry.parent_id, ""), names.get(entry.parent_id, "")


async def image_info(ctx: Context, user: User, oss_id: str) -> tuple[File, Source | None]:
    """An image-bed file and what it is as an image (``None``: none libvips reads), as read
    once when its upload completed (or now, for a file older than that)."""
    async with ctx.db.read() as session:
        entry = await _by_oss_id(session, user, oss_id)
        if entry is None or entry.is_dir or entry.blob_id is None:
            raise NotFound(f"fileID 文件不存在 (no such file: {oss_id})")
        blob = await session.get(Blob, entry.blob_id)
    if blob is None:
        raise NotFound(f"fileID 文件不存在 (no such file: {oss_id})")
    return entry, await variant_store.image_source(ctx, blob.id, blob.key)


async def create_upload(
    ctx: Context, user: User, parent_oss_id: str, name: str, etag: str, size: int
) -> uploads.Created:
    """Start an upload into the image-bed directory ``parent_oss_id`` (``""``: the root)."""
    async with ctx.db.read() as session:
        parent = await resolve_dir(session, user, "parentFileID", parent_oss_id)
    return await uploads.create(
        ctx, user, SPACE_OSS, parent.id if parent else tree.ROOT, name, etag, size
    )


async def _entries(session: Session, user: User, oss_ids: list[str]) -> list[File]:
    by_id = await tree.entries_by_id(session, user.id, SPACE_OSS, oss_ids, by_oss_id=True)
    missing = [i for i in oss_ids if i not in by_id]
    if missing:
        raise NotFound(f"fileIDs 文件不存在 (no such file: {', '.join(missing[:5])})")
    return [by_id[i] for i in dict.fromkeys(oss_ids)]


async def move(ctx: Context, user: User, oss_ids: list[str], target_oss_id: str) -> None:
    """Move entries into a directory: all of them, or none if one cannot go."""
    async with ctx.db.write() as session:
        target = await resolve_dir(session, user, "toParentFileID", target_oss_id)
        target_id = target.id if target else tree.ROOT
        entries = await _entries(session, user, oss_ids)
        shown = attrgetter("oss_id")  # the image bed's clients know entries by their oss_id
        await tree.move_entries(session, user.id, SPACE_OSS, entries, target_id, shown=shown)
        await _flush_unique(session, "toParentFileID")


async def delete(ctx: Context, user: User, oss_ids: list[str]) -> None:
    """Delete entries; a directory takes everything in it along."""
    async with ctx.db.write() as session:
        entries = await _entries(session, user, oss_ids)
        keys = await tree.delete_entries(session, entries)
    for key in keys:
        await ctx.blobs.delete(key)


async def _flush_unique(session: Session, field: str) -> None:
    """Flush, turning a lost race on the unique-name index into the same answer as a clash."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise OpenpanError(f"{field} 已存在同名文件 (name already exists)") from exc
