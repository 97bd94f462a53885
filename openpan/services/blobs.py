"""Content addressing: one ``Blob`` row per distinct (md5, size), counted by the files using it.

Storage keys carry a random suffix, so a blob being deleted (its last file gone) and the same
bytes being uploaded again at that moment never share a path: the new upload gets a new key.
"""

from __future__ import annotations

import secrets

from sqlalchemy import and_, bindparam, delete, exists, select, update

from openpan.clock import utcnow
from openpan.db.engine import Reader, dialect_name, insert_unless_taken
from openpan.db.models import Blob, BlobVariant, from_row, table_of
from openpan.db.session import Session, hot

# Every upload and download that completes runs these: Core, written once (see
# ``Database.rows`` for what the ORM cost per statement).
_blobs = table_of(Blob)
_FIND = hot(
    select(_blobs).where(_blobs.c.md5 == bindparam("md5"), _blobs.c.size == bindparam("size"))
)
_TAKE = hot(
    update(_blobs)
    .where(_blobs.c.id == bindparam("blob_id"), _blobs.c.refcount > 0)
    .values(refcount=_blobs.c.refcount + 1)
)
_INSERT_NEW = {
    dialect: hot(statement.returning(_blobs.c.id))
    for dialect, statement in insert_unless_taken(_blobs).items()
}


def new_key(md5: str, size: int, tag: str | None = None) -> str:
    """A storage key for these bytes; ``tag`` (default random) tells apart copies of them."""
    return f"{md5[:2]}/{md5}-{size}-{tag or secrets.token_hex(4)}"


async def find(session: Session | Reader, md5: str, size: int) -> Blob | None:
    """The stored blob with these bytes, if there is one."""
    row = (await session.execute(_FIND, {"md5": md5, "size": size})).first()
    return None if row is None else from_row(Blob, row)


async def acquire(session: Session, md5: str, size: int) -> Blob | None:
    """Take a reference to the stored blob with these bytes, if there is one (instant upload)."""
    blob = await find(session, md5, size)
    if blob is None:
        return None
    taken = await session.execute(_TAKE, {"blob_id": blob.id})
    if taken.rowcount != 1:
        return None  # its last reference went a moment ago; it is being deleted
    return blob


async def acquire_by_id(session: Session, blob_id: int) -> None:
    """One more reference to a blob the caller already holds one to (copies share bytes)."""
    await session.execute(update(Blob).where(Blob.id == blob_id).values(refcount=Blob.refcount + 1))


async def register(session: Session, md5: str, size: int, key: str) -> tuple[Blob, bool]:
    """Record newly stored bytes under ``key`` with one reference.

    Returns ``(blob, stored)``; ``stored`` is False when an identical blob was registered first
    (a race between two uploads of the same bytes): the caller then deletes its own copy.
    """
    values = {"md5": md5, "size": size, "key": key, "refcount": 1, "created_at": utcnow()}
    insert_new = _INSERT_NEW[dialect_name(session)]
    # Twice at most: the identical blob the insert ran into may lose its last reference and
    # go before it is taken (PostgreSQL, another transaction), and then the insert fits.
    for _ in range(2):
        blob_id = await session.scalar(insert_new, values)
        if blob_id is not None:
            return Blob(id=blob_id, **values), True
        existing = await acquire(session, md5, size)
        if existing is not None:
            return existing, False
    raise RuntimeError(f"blob {md5}/{size} neither inserted nor found")


async def release(session: Session, blob_id: int) -> list[str]:
    """Drop one reference. Returns the storage keys to delete (after commit) if it was the
    last: the blob's and its variants'."""
    await session.execute(update(Blob).where(Blob.id == blob_id).values(refcount=Blob.refcount - 1))
    # Its variants first, while the blob row still says it is going (the foreign key would
    # remove their rows with it, but not hand back their keys).
    variant_keys = await session.scalars(
        delete(BlobVariant)
        .where(
            BlobVariant.blob_id == blob_id,
            exists().where(and_(Blob.id == blob_id, Blob.refcount <= 0)),
        )
        .returning(BlobVariant.key)
    )
    keys = [key for key in variant_keys.all() if key]
    gone = await session.execute(
        delete(Blob).where(Blob.id == blob_id, Blob.refcount <= 0).returning(Blob.key)
    )
    key = gone.scalar_one_or_none()
    return [key, *keys] if key is not None else []
