"""Image variants kept in the blob store and made once: what a blob is as an image
(``image_source``), and the stored variant a link serves (``stored_variant``).

Each variant is a row of ``blob_variants`` and a blob under ``v/{original's key}/{name}``.
The row is inserted *before* the variant is made, as a claim: of all the requests, in any
process, that want the same variant first, the one whose insert lands makes it and the others
wait for the row to say where it is. A claim older than twice ``variant_timeout`` is a maker
that died; it is taken over. Within a process, requests for the same variant share one wait.

An image that cannot have variants (no image libvips reads, too many pixels, does not decode)
is recorded as refused, so it costs one attempt, and its links serve the original. A variant
that took too long leaves no record: it is tried again by a later request.

The variants of a blob go with it (``blobs.release`` hands back their keys too).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import anyio
from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError

from openpan.clock import utcnow
from openpan.db.engine import dialect_name, insert_unless_taken
from openpan.db.models import Blob, BlobVariant, table_of
from openpan.services import variants
from openpan.services.context import Context
from openpan.services.variants import Source, Variant, VariantRefused, VariantTimedOut

log = logging.getLogger("openpan.variants")

_variants = table_of(BlobVariant)
_CLAIM = {
    dialect: statement.returning(_variants.c.id)
    for dialect, statement in insert_unless_taken(_variants).items()
}
# How often a request waiting for another process's variant looks again.
_POLL = 0.05
K = TypeVar("K")
V = TypeVar("V")
# The most entries of each kind kept in memory; beyond it the oldest are dropped.
_MAX_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class StoredVariant:
    """A variant in the blob store, as a link serves it."""

    key: str
    size: int
    md5: str
    created: datetime
    media_type: str


class VariantState:
    """This process's part: images read, variants found, makings under way, the render limit."""

    def __init__(self) -> None:
        # By the blob's storage key, never its row ID: a deleted blob's ID can be reused by
        # other bytes (SQLite hands out the highest ID again), a key never is.
        self.sources: dict[str, Source | None] = {}
        self.stored: dict[tuple[str, str], StoredVariant | None] = {}
        self.making: dict[tuple[str, str], asyncio.Future[StoredVariant | None]] = {}
        self.renders: asyncio.Semaphore | None = None

    def limit(self, ctx: Context) -> asyncio.Semaphore:
        """The semaphore that bounds the renders running at once in this process."""
        if self.renders is None:
            self.renders = asyncio.Semaphore(ctx.settings.variant_renders or os.cpu_count() or 1)
        return self.renders


def variant_key(blob_key: str, name: str) -> str:
    """The storage key of variant ``name`` of the blob stored under ``blob_key``."""
    return f"v/{blob_key}/{name}"


def _remember(table: dict[K, V], key: K, value: V) -> None:
    if len(table) >= _MAX_ENTRIES:
        for old in list(table)[: _MAX_ENTRIES // 10]:
            del table[old]
    table[key] = value


# The original as an image -------------------------------------------------------------------


def source_of(blob: Blob) -> Source | None:
    """What a blob row says it is as an image: ``None`` when it is none libvips reads;
    ``LookupError`` when it has not been read yet."""
    if blob.image_format is None:
        raise LookupError(blob.id)
    if not blob.image_format or not blob.image_width or not blob.image_height:
        return None
    return Source(blob.image_width, blob.image_height, blob.image_format, blob.image_frames or 1)


async def image_source(ctx: Context, blob_id: int, key: str) -> Source | None:
    """What the blob is as an image (``None``: none libvips reads), read from its header once
    and kept on its row."""
    state = ctx.part(VariantState)
    if key in state.sources:
        return state.sources[key]
    async with ctx.db.read() as session:
        blob = await session.get(Blob, blob_id)
    if blob is None:
        return None
    try:
        source = source_of(blob)
    except LookupError:
        async with _local_copy(ctx, key) as path:
            source = await read_image(ctx, path, key)
    _remember(state.sources, key, source)
    return source


async def read_image(ctx: Context, path: Path, key: str) -> Source | None:
    """Read the image at ``path`` (the bytes of the blob stored under ``key``) from its header,
    and keep what it is on the blob's row."""
    try:
        source: Source | None = await anyio.to_thread.run_sync(variants.read_source, str(path))
    except VariantRefused:
        source = None
    async with ctx.db.write() as session:
        await session.execute(
            update(Blob)
            .where(Blob.key == key)
            .values(
                image_format=source.format[:16] if source else "",
                image_width=source.width if source else None,
                image_height=source.height if source else None,
                image_frames=source.pages if source else None,
            )
        )
    return source


async def remember_image(ctx: Context, key: str) -> None:
    """Read what newly stored image-bed bytes are as an image, when they are on this machine
    (an upload just completed). Never fails the upload: a blob not read here is read the first
    time a variant of it is asked for."""
    path = ctx.blobs.local_path(key)
    if path is None:
        return
    try:
        await read_image(ctx, path, key)
    except Exception:
        log.warning("could not read blob %s as an image", key, exc_info=True)


@asynccontextmanager
async def _local_copy(ctx: Context, key: str) -> AsyncIterator[Path]:
    """A file on this machine with the blob's bytes: its own, or a temporary copy of an object
    (fetched in chunks, so memory does not grow with the image)."""
    path = ctx.blobs.local_path(key)
    if path is not None:
        yield path
        return
    copy = ctx.temp_files.temp_path()
    try:
        async with await anyio.open_file(copy, "wb") as out:
            async for chunk in ctx.blobs.read(key):
                await out.write(chunk)
        yield copy
    finally:
        copy.unlink(missing_ok=True)


# Variants -----------------------------------------------------------------------------------


async def stored_variant(
    ctx: Context, blob_id: int, blob_key: str, variant: Variant
) -> StoredVariant | None:
    """``variant`` of the blob, made and stored if it is not yet; ``None`` when the image gets
    no variant (the original is to be served)."""
    state = ctx.part(VariantState)
    wanted = (blob_key, variant.name)
    if wanted in state.stored:
        return state.stored[wanted]
    pending = state.making.get(wanted)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[StoredVariant | None] = asyncio.get_running_loop().create_future()
    state.making[wanted] = future
    try:
        found = await _find_or_make(ctx, blob_id, blob_key, variant)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: nobody may be waiting for it
        raise
    else:
        future.set_result(found)
        if found is not None:
            _remember(state.stored, wanted, found)
        return found
    finally:
        del state.making[wanted]


async def _row(ctx: Context, blob_id: int, name: str) -> BlobVariant | None:
    async with ctx.db.read() as session:
        row: BlobVariant | None = await session.scalar(
            select(BlobVariant).where(BlobVariant.blob_id == blob_id, BlobVariant.name == name)
        )
        return row


def _stored(row: BlobVariant, variant: Variant) -> StoredVariant:
    assert row.key is not None
    return StoredVariant(row.key, row.size, row.md5, row.created_at, variants.media_type(variant))


async def _find_or_make(
    ctx: Context, blob_id: int, blob_key: str, variant: Variant
) -> StoredVariant | None:
    stale_after = timedelta(seconds=2 * ctx.settings.variant_timeout)
    while True:
        row = await _row(ctx, blob_id, variant.name)
        if row is not None and row.key is not None:
            return _stored(row, variant)
        if row is not None and row.refused is not None:
            _remember(ctx.part(VariantState).stored, (blob_key, variant.name), None)
            return None
        claim = await _claim(ctx, blob_id, variant.name, row, stale_after)
        if claim is not None:
            return await _make(ctx, claim, blob_id, blob_key, variant)
        if row is None and await _row(ctx, blob_id, variant.name) is None:
            return None  # neither claimed nor there: the blob is gone
        await asyncio.sleep(_POLL)  # another process is making it


async def _claim(
    ctx: Context, blob_id: int, name: str, row: BlobVariant | None, stale_after: timedelta
) -> int | None:
    """The ID of this process's claim to make the variant, or ``None`` when another holds one
    (or the blob is gone)."""
    now = utcnow()
    async with ctx.db.write() as session:
        if row is None:
            values = {
                "blob_id": blob_id,
                "name": name,
                "key": None,
                "md5": "",
                "size": 0,
                "refused": None,
                "claimed_at": now,
                "created_at": now,
            }
            try:
                claimed: int | None = await session.scalar(_CLAIM[dialect_name(session)], values)
            except IntegrityError:  # the blob went a moment ago
                return None
            return claimed
        if row.claimed_at > now - stale_after:
            return None
        # Its maker died: take the claim over, unless another process just did.
        taken = await session.execute(
            update(BlobVariant)
            .where(
                BlobVariant.id == row.id,
                BlobVariant.key.is_(None),
                BlobVariant.refused.is_(None),
                BlobVariant.claimed_at == row.claimed_at,
            )
            .values(claimed_at=now)
        )
        return row.id if taken.rowcount == 1 else None


async def _make(
    ctx: Context, claim: int, blob_id: int, blob_key: str, variant: Variant
) -> StoredVariant | None:
    """Make the claimed variant and store it; ``None`` (recorded) when the image gets none."""
    settings = ctx.settings
    try:
        source = await image_source(ctx, blob_id, blob_key)
        if source is None:
            raise VariantRefused("not an image libvips can read")
        variants.check_pixels(source, settings.variant_max_pixels)
        async with _local_copy(ctx, blob_key) as path, ctx.part(VariantState).limit(ctx):
            started = time.monotonic()
            data = await anyio.to_thread.run_sync(
                variants.render, str(path), variant, settings.variant_timeout
            )
            log.debug("made %s of %s in %.3f s", variant.name, blob_key, time.monotonic() - started)
    except VariantTimedOut:
        await _settle(ctx, claim, refused=None)  # perhaps only a busy moment: tried again later
        return None
    except VariantRefused as exc:
        await _settle(ctx, claim, refused=str(exc))
        _remember(ctx.part(VariantState).stored, (blob_key, variant.name), None)
        return None
    except FileNotFoundError:  # the original went a moment ago
        await _settle(ctx, claim, refused=None)
        return None
    except BaseException:
        await _settle(ctx, claim, refused=None)
        raise
    key = variant_key(blob_key, variant.name)
    md5 = hashlib.md5(data).hexdigest()
    temp = ctx.temp_files.temp_path()
    try:
        await anyio.Path(temp).write_bytes(data)
        await ctx.blobs.put_file(key, temp)
    except BaseException:
        temp.unlink(missing_ok=True)
        await _settle(ctx, claim, refused=None)
        raise
    now = utcnow()
    async with ctx.db.write() as session:
        done = await session.execute(
            update(BlobVariant)
            .where(
                BlobVariant.id == claim,
                exists().where(and_(Blob.id == blob_id, Blob.refcount > 0)),
            )
            .values(key=key, md5=md5, size=len(data), created_at=now)
        )
    if done.rowcount != 1:  # the original went while its variant was made
        await ctx.blobs.delete(key)
        return None
    return StoredVariant(key, len(data), md5, now, variants.media_type(variant))


async def _settle(ctx: Context, claim: int, *, refused: str | None) -> None:
    """End a claim that made nothing: recorded as ``refused`` for good, or (``None``) given up,
    so that a later request tries again."""
    async with ctx.db.write() as session:
        if refused is None:
            await session.execute(
                _variants.delete().where(_variants.c.id == claim, _variants.c.key.is_(None))
            )
        else:
            await session.execute(
                update(BlobVariant).where(BlobVariant.id == claim).values(refused=refused[:500])
            )
