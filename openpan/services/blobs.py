"""Content addressing: one ``Blob`` row per distinct (md5, size), counted by the files using it.

Storage keys carry a random suffix, so a blob being deleted (its last file gone) and the same
bytes being uploaded again at that moment never share a path: the new upload gets a new key.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openpan.clock import utcnow
from openpan.db.engine import one_writer
from openpan.db.models import Blob


def new_key(md5: str, size: int, tag: str | None = None) -> str:
    """A storage key for these bytes; ``tag`` (default random) tells apart copies of them."""
    return f"{md5[:2]}/{md5}-{size}-{tag or secrets.token_hex(4)}"


async def find(session: AsyncSession, md5: str, size: int) -> Blob | None:
    return await session.scalar(select(Blob).where(Blob.md5 == md5, Blob.size == size))


async def acquire(session: AsyncSession, md5: str, size: int) -> Blob | None:
    """Take a reference to the stored blob with these bytes, if there is one (instant upload)."""
    blob = await find(session, md5, size)
    if blob is None:
        return None
    taken = await session.execute(
        update(Blob).where(Blob.id == blob.id, Blob.refcount > 0).values(refcount=Blob.refcount + 1)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None  # its last reference went a moment ago; it is being deleted
    return blob


async def acquire_by_id(session: AsyncSession, blob_id: int) -> None:
    """One more reference to a blob the caller already holds one to (copies share bytes)."""
    await session.execute(update(Blob).where(Blob.id == blob_id).values(refcount=Blob.refcount + 1))


async def register(session: AsyncSession, md5: str, size: int, key: str) -> tuple[Blob, bool]:
    """Record newly stored bytes under ``key`` with one reference.

    Returns ``(blob, stored)``; ``stored`` is False when an identical blob was registered first
    (a race between two uploads of the same bytes): the caller then deletes its own copy.
    """
    existing = await acquire(session, md5, size)
    if existing is not None:
        return existing, False
    blob = Blob(md5=md5, size=size, key=key, refcount=1, created_at=utcnow())
    if one_writer(session):  # nobody can have inserted it since ``acquire`` looked
        session.add(blob)
        await session.flush()
        return blob, True
    try:
        async with session.begin_nested():
            session.add(blob)
        return blob, True
    except IntegrityError:
        existing = await acquire(session, md5, size)
        if existing is None:
            raise
        return existing, False


async def release(session: AsyncSession, blob_id: int) -> str | None:
    """Drop one reference. Returns the storage key to delete (after commit) if it was the last."""
    await session.execute(update(Blob).where(Blob.id == blob_id).values(refcount=Blob.refcount - 1))
    gone = await session.execute(
        delete(Blob).where(Blob.id == blob_id, Blob.refcount <= 0).returning(Blob.key)
    )
    return gone.scalar_one_or_none()
