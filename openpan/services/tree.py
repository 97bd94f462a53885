"""Directory-tree rules shared by both spaces (image bed and cloud disk).

Every function takes the owner's user ID: a row of another user is never found, whatever ID
is sent, so "not yours" and "does not exist" are the same answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, select

from openpan import ids
from openpan.clock import utcnow
from openpan.db.models import SPACE_OSS, File, table_of
from openpan.db.session import Session, hot
from openpan.db.statuses import FileStatus
from openpan.errors import OpenpanError
from openpan.services import blobs, public_links
from openpan.services.names import extension, numbered

ROOT = 0
MAX_DEPTH = 64

_files = table_of(File)
# The live entry of a directory with a given name: names are unique among them.
_NAMED = (
    _files.c.user_id == bindparam("user_id"),
    _files.c.space == bindparam("space"),
    _files.c.parent_id == bindparam("parent_id"),
    _files.c.name == bindparam("name"),
    _files.c.trashed.is_(False),
)
_NAME_TAKEN = select(File).where(*_NAMED)
_NAME_HOLDER = hot(select(_files.c.id, _files.c.is_dir).where(*_NAMED))


async def get(session: Session, user_id: int, space: str, file_id: int) -> File | None:
    """A live entry of this user in this space, by internal ID."""
    return await session.scalar(
        select(File).where(File.id == file_id, File.user_id == user_id, File.space == space)
    )


async def name_taken(
    session: Session, user_id: int, space: str, parent_id: int, name: str
) -> File | None:
    """The live entry called ``name`` in a directory, if there is one."""
    named = {"user_id": user_id, "space": space, "parent_id": parent_id, "name": name}
    return await session.scalar(_NAME_TAKEN, named)


async def name_holder(
    session: Session, user_id: int, space: str, parent_id: int, name: str
) -> tuple[int, bool] | None:
    """``(id, is_dir)`` of the live entry called ``name`` in a directory, if there is one:
    ``name_taken`` without loading the entry, for the paths every download takes."""
    named = {"user_id": user_id, "space": space, "parent_id": parent_id, "name": name}
    row = (await session.execute(_NAME_HOLDER, named)).first()
    return None if row is None else (row.id, row.is_dir)


async def same_image(
    session: Session, user_id: int, parent_id: int, etag: str, size: int
) -> File | None:
    """An image of the image bed's directory with these bytes (etag and size), if there is one:
    the image bed's rule is that the same image uploaded again into a directory replaces it in
    place, keeping its fileId, rather than being stored twice."""
    return await session.scalar(
        select(File)
        .where(
            File.user_id == user_id,
            File.space == SPACE_OSS,
            File.parent_id == parent_id,
            File.is_dir.is_(False),
            File.etag == etag,
            File.size == size,
        )
        .limit(1)
    )


def new_entry(
    user_id: int,
    space: str,
    parent_id: int,
    name: str,
    *,
    blob_id: int | None = None,
    size: int = 0,
    etag: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The column values of a new entry: a file of ``blob_id``'s bytes, or a directory when
    ``blob_id`` is None. One builder for every way an entry is made (upload, copy, offline
    download, mkdir), as ``File(**values)`` or a Core insert's parameters."""
    now = now or utcnow()
    is_dir = blob_id is None
    return {
        "user_id": user_id,
        "space": space,
        "oss_id": ids.sortable_id() if space == SPACE_OSS else None,
        "parent_id": parent_id,
        "name": name,
        "is_dir": is_dir,
        "blob_id": blob_id,
        "size": size,
        "etag": etag,
        "ext": "" if is_dir else extension(name),
        "status": FileStatus.DIRECTORY if is_dir else FileStatus.APPROVED,
        "created_at": now,
        "updated_at": now,
    }


# How many numbered names ``free_name`` tries before it gives up.
MAX_NUMBERED = 10_000


async def free_name(
    session: Session,
    user_id: int,
    space: str,
    parent_id: int,
    name: str,
    field: str = "filename",
) -> str:
    """``name`` if no live entry of the directory holds it, else the first free of
    ``name(1).ext``, ``name(2).ext``… (``names.numbered``): the one rule for "keep both"."""
    if await name_holder(session, user_id, space, parent_id, name) is None:
        return name
    for number in range(1, MAX_NUMBERED + 1):
        candidate = numbered(name, number)
        if await name_holder(session, user_id, space, parent_id, candidate) is None:
            return candidate
    raise OpenpanError(f"{field} 同名文件过多 (too many files with this name)")


async def descendant_ids(session: Session, user_id: int, space: str, root_id: int) -> list[int]:
    """IDs of everything below a directory (not the directory itself), breadth first."""
    found: list[int] = []
    frontier = [root_id]
    while frontier:
        children = (
            await session.execute(
                select(File.id, File.is_dir).where(
                    File.user_id == user_id,
                    File.space == space,
                    File.parent_id.in_(frontier),
                )
            )
        ).all()
        dirs = [child_id for child_id, is_dir in children if is_dir]
        found.extend(child_id for child_id, is_dir in children if not is_dir)
        found.extend(dirs)
        frontier = dirs
    return found


async def entries_by_id(
    session: Session, user_id: int, space: str, ids: list[Any], *, by_oss_id: bool = False
) -> dict[Any, File]:
    """The user's entries in ``space`` among ``ids`` (numeric IDs, or the image bed's string
    IDs with ``by_oss_id``), keyed by the ID asked; the ones missing are simply absent."""
    column = File.oss_id if by_oss_id else File.id
    found = await session.scalars(
        select(File).where(column.in_(set(ids)), File.user_id == user_id, File.space == space)
    )
    return {f.oss_id if by_oss_id else f.id: f for f in found}


async def is_inside(
    session: Session, user_id: int, space: str, candidate_id: int, ancestor_id: int
) -> bool:
    """Whether directory ``candidate_id`` is ``ancestor_id`` or lies below it."""
    current = candidate_id
    for _ in range(10_000):
        if current == ancestor_id:
            return True
        if current == ROOT:
            return False
        parent = await session.scalar(
            select(File.parent_id).where(
                File.id == current, File.user_id == user_id, File.space == space
            )
        )
        if parent is None:
            return False
        current = parent
    return True  # a cycle would be a bug; refuse the move rather than loop


async def move_entries(
    session: Session,
    user_id: int,
    space: str,
    entries: list[File],
    target_id: int,
    *,
    shown: Callable[[File], object],
    clash_prefix: str = "",
) -> None:
    """Move ``entries`` into directory ``target_id``, all of them or none: refused when two of
    them share a name, a directory would go into itself or below it, or the name is taken
    there. ``shown(entry)`` is the ID the space's clients know an entry by, ``clash_prefix``
    what the answer to a taken name starts with. The caller flushes."""
    moving = [e for e in entries if e.parent_id != target_id]
    names = [e.name for e in moving]
    if len(set(names)) != len(names):
        raise OpenpanError("fileIDs 中有同名文件 (two entries with the same name)")
    for entry in moving:
        if entry.is_dir and await is_inside(session, user_id, space, target_id, entry.id):
            raise OpenpanError(
                f"toParentFileID 不能把目录移动到它自己或它的子目录中 ({shown(entry)})"
            )
        if await name_taken(session, user_id, space, target_id, entry.name):
            raise OpenpanError(
                f"{clash_prefix}目标目录已存在同名文件: {entry.name} (name already exists)"
            )
    now = utcnow()
    for entry in moving:
        entry.parent_id = target_id
        entry.updated_at = now


async def delete_entries(session: Session, entries: list[File]) -> list[str]:
    """Delete entries (directories with all they contain). Returns blob keys to remove after
    the transaction commits."""
    doomed: set[int] = set()
    for entry in entries:
        doomed.add(entry.id)
        if entry.is_dir:
            doomed.update(await descendant_ids(session, entry.user_id, entry.space, entry.id))
    keys: list[str] = []
    ids = sorted(doomed)
    public_links.files_removed(session, ids)
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        blob_ids = (
            await session.scalars(
                select(File.blob_id).where(File.id.in_(batch), File.blob_id.is_not(None))
            )
        ).all()
        await session.execute(delete(File).where(File.id.in_(batch)))
        for blob_id in blob_ids:
            if blob_id is not None:
                keys += await blobs.release(session, blob_id)
    return keys


async def ancestors(session: Session, user_id: int, space: str, dir_id: int) -> list[File]:
    """The directories from the root down to ``dir_id`` (included), for breadcrumbs; empty for
    the root or for an ID that is not this user's directory."""
    chain: list[File] = []
    current = dir_id
    while current != ROOT and len(chain) < MAX_DEPTH:
        entry = await get(session, user_id, space, current)
        if entry is None or not entry.is_dir:
            return []
        chain.append(entry)
        current = entry.parent_id
    return chain[::-1]
